// Rover firmware for an Arduino Uno/Nano: serial COMMANDs from the bridge -> servo + ESC pulses.
//
// All protocol, watchdog and range-check logic is in rover_protocol.h (host-tested with g++);
// this sketch only wires it to Serial, Timer1 and the optional RC receiver inputs.
// No library beyond the Arduino core: the pulses come from Timer1's hardware PWM.
// Build: arduino-cli compile --fqbn arduino:avr:uno src/rover_bridge/firmware/rover_firmware
//        (or `make firmware` with Debian's arduino-core-avr)
// Limits and timings are compile-time constants (see the top of rover_protocol.h), e.g.
//   --build-property "compiler.cpp.extra_flags=-DROVER_THROTTLE_MAX_US=1700"
#include "rover_protocol.h"

#ifndef ROVER_BAUD
#define ROVER_BAUD 115200
#endif
// Timer1's outputs on the Uno/Nano (ATmega328P): OC1A = PB1 = pin 9, OC1B = PB2 = pin 10. Fixed by the hardware.
#define ROVER_STEERING_PIN 9
#define ROVER_THROTTLE_PIN 10
// Timer1 at F_CPU / 8 = 2 MHz: 0.5 us per tick; TOP = 40000 ticks = a 20 ms (50 Hz) servo frame.
#define ROVER_PWM_TICKS_PER_US 2
#define ROVER_PWM_PERIOD_TICKS 40000U
// RC receiver inputs on the two external-interrupt pins of the Uno/Nano (2 and 3); 0 = not wired.
#ifndef ROVER_RC_INPUT
#define ROVER_RC_INPUT 0
#endif
#define ROVER_RC_STEERING_PIN 2
#define ROVER_RC_THROTTLE_PIN 3
#define ROVER_RC_TIMEOUT_MS 100  // no pulse for this long -> "no signal"

static rover::Firmware firmware;
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

// Fast PWM mode 14 (TOP = ICR1), non-inverting on OC1A/OC1B: the pins go high at BOTTOM and
// low at the compare match, so a pulse is OCR1x + 1 ticks. No interrupts are involved, so
// serial traffic can never jitter the pulses.
static void pwm_begin() {
  TCCR1A = 0;
  TCCR1B = 0;
  ICR1 = ROVER_PWM_PERIOD_TICKS - 1;
  OCR1A = static_cast<uint16_t>(firmware.steering_us() * ROVER_PWM_TICKS_PER_US - 1);
  OCR1B = static_cast<uint16_t>(firmware.throttle_us() * ROVER_PWM_TICKS_PER_US - 1);
  TCNT1 = 0;
  DDRB |= _BV(DDB1) | _BV(DDB2);  // pins 9 and 10 as outputs
  TCCR1A = _BV(COM1A1) | _BV(COM1B1) | _BV(WGM11);
  TCCR1B = _BV(WGM13) | _BV(WGM12) | _BV(CS11);  // prescaler 8: starts the timer
}

static void write_outputs() {
  // OCR1x are double-buffered in this mode: a new width starts with the next frame, never mid-pulse.
  // Written only when changed; no ISR touches Timer1's 16-bit registers, so the writes need no lock.
  if (firmware.steering_us() != written_steering_us) {
    written_steering_us = firmware.steering_us();
    OCR1A = static_cast<uint16_t>(written_steering_us * ROVER_PWM_TICKS_PER_US - 1);
  }
  if (firmware.throttle_us() != written_throttle_us) {
    written_throttle_us = firmware.throttle_us();
    OCR1B = static_cast<uint16_t>(written_throttle_us * ROVER_PWM_TICKS_PER_US - 1);
  }
}

void setup() {
  // Neutral pulses first: the ESC arms on the neutral it sees at power-up.
  uint32_t now = millis();
  firmware.begin(now);
  written_steering_us = firmware.steering_us();
  written_throttle_us = firmware.throttle_us();
  pwm_begin();
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
