// Rover firmware for an Arduino Uno/Nano: serial COMMANDs from the bridge -> servo + ESC pulses.
//
// All protocol, watchdog and clamping logic is in rover_protocol.h (host-tested with g++);
// this sketch only wires it to Serial, Servo and the optional RC receiver inputs.
// Build: arduino-cli compile --fqbn arduino:avr:uno src/rover_bridge/firmware/rover_firmware
// Limits and timings are compile-time constants (see the top of rover_protocol.h), e.g.
//   --build-property "compiler.cpp.extra_flags=-DROVER_THROTTLE_MAX_US=1700"
#include <Servo.h>

#include "rover_protocol.h"

#ifndef ROVER_BAUD
#define ROVER_BAUD 115200
#endif
#ifndef ROVER_STEERING_PIN
#define ROVER_STEERING_PIN 9
#endif
#ifndef ROVER_THROTTLE_PIN
#define ROVER_THROTTLE_PIN 10
#endif
// RC receiver inputs on the two external-interrupt pins of the Uno/Nano (2 and 3); 0 = not wired.
#ifndef ROVER_RC_INPUT
#define ROVER_RC_INPUT 0
#endif
#define ROVER_RC_STEERING_PIN 2
#define ROVER_RC_THROTTLE_PIN 3
#define ROVER_RC_TIMEOUT_MS 100  // no pulse for this long -> "no signal"

static rover::Firmware firmware;
static Servo steering_servo;
static Servo throttle_esc;
static uint8_t tx_buffer[rover::MAX_WIRE_LEN];
static uint32_t last_telemetry_ms;
static uint16_t written_steering_us;
static uint16_t written_throttle_us;

#if ROVER_RC_INPUT
static volatile uint32_t rc_rise_us[2];
static volatile uint16_t rc_width_us[2];
static volatile uint32_t rc_seen_ms[2];

static void rc_edge(uint8_t channel, uint8_t pin) {
  uint32_t now = micros();
  if (digitalRead(pin)) {
    rc_rise_us[channel] = now;
  } else {
    rc_width_us[channel] = static_cast<uint16_t>(now - rc_rise_us[channel]);
    rc_seen_ms[channel] = millis();
  }
}
static void rc_steering_isr() { rc_edge(0, ROVER_RC_STEERING_PIN); }
static void rc_throttle_isr() { rc_edge(1, ROVER_RC_THROTTLE_PIN); }

static uint16_t rc_read(uint8_t channel, uint32_t now_ms) {
  noInterrupts();
  uint16_t width = rc_width_us[channel];
  uint32_t seen = rc_seen_ms[channel];
  interrupts();
  return (now_ms - seen) < ROVER_RC_TIMEOUT_MS ? width : 0;
}
#endif

static void write_outputs() {
  // Servo.writeMicroseconds only when changed: keeps the loop short.
  if (firmware.steering_us() != written_steering_us) {
    written_steering_us = firmware.steering_us();
    steering_servo.writeMicroseconds(written_steering_us);
  }
  if (firmware.throttle_us() != written_throttle_us) {
    written_throttle_us = firmware.throttle_us();
    throttle_esc.writeMicroseconds(written_throttle_us);
  }
}

void setup() {
  // Neutral pulses first: the ESC arms on the neutral it sees at power-up.
  uint32_t now = millis();
  firmware.begin(now);
  steering_servo.attach(ROVER_STEERING_PIN, ROVER_STEERING_MIN_US, ROVER_STEERING_MAX_US);
  throttle_esc.attach(ROVER_THROTTLE_PIN, ROVER_THROTTLE_MIN_US, ROVER_THROTTLE_MAX_US);
  written_steering_us = firmware.steering_us();
  written_throttle_us = firmware.throttle_us();
  steering_servo.writeMicroseconds(written_steering_us);
  throttle_esc.writeMicroseconds(written_throttle_us);
#if ROVER_RC_INPUT
  pinMode(ROVER_RC_STEERING_PIN, INPUT);
  pinMode(ROVER_RC_THROTTLE_PIN, INPUT);
  attachInterrupt(digitalPinToInterrupt(ROVER_RC_STEERING_PIN), rc_steering_isr, CHANGE);
  attachInterrupt(digitalPinToInterrupt(ROVER_RC_THROTTLE_PIN), rc_throttle_isr, CHANGE);
#endif
  Serial.begin(ROVER_BAUD);
  // Announce ourselves: the bridge waits for this after opening the port (which resets the board).
  Serial.write(tx_buffer, firmware.hello_frame(tx_buffer));
  last_telemetry_ms = now;
}

void loop() {
  while (Serial.available() > 0) {
    size_t reply = firmware.on_byte(static_cast<uint8_t>(Serial.read()), millis(), tx_buffer);
    if (reply) Serial.write(tx_buffer, reply);
  }
  uint32_t now = millis();
#if ROVER_RC_INPUT
  firmware.update(now, rc_read(0, now), rc_read(1, now));
#else
  firmware.update(now, 0, 0);
#endif
  write_outputs();
  if (static_cast<uint32_t>(now - last_telemetry_ms) >= ROVER_TELEMETRY_MS) {
    last_telemetry_ms = now;
    Serial.write(tx_buffer, firmware.telemetry_frame(now, tx_buffer));
  }
}
