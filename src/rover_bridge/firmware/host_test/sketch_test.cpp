// Runs the real sketch (rover_firmware.ino) on the host against a stub Arduino core, with
// simulated millis(), serial port and Timer1 registers: boot HELLO, Timer1 PWM set-up, ESC
// arming, commands reaching the pulse widths, range rejection, the 250 ms watchdog,
// PING/PONG, e-stop latch, garbage tolerance.
// Exit code 0 when every check passes.
#include <stdio.h>

#include "Arduino.h"

unsigned long stub_millis = 0;
HardwareSerial Serial;
uint8_t TCCR1A, TCCR1B, DDRB;
uint16_t ICR1, OCR1A, OCR1B, TCNT1;

#include "../rover_firmware/rover_firmware.ino"

using namespace rover;

static int checks = 0;
static int failures = 0;
#define CHECK(cond, ...)                                     \
  do {                                                       \
    ++checks;                                                \
    if (!(cond)) {                                           \
      ++failures;                                            \
      printf("FAIL line %d: %s: ", __LINE__, #cond);         \
      printf(__VA_ARGS__);                                   \
      printf("\n");                                          \
    }                                                        \
  } while (0)

// The pulse widths Timer1 outputs (fast PWM: OCR1x + 1 ticks of 0.5 us).
static int steering_pulse_us() { return (OCR1A + 1) / 2; }
static int throttle_pulse_us() { return (OCR1B + 1) / 2; }

static uint8_t host_seq = 0;

static void host_send(uint8_t type, const uint8_t* body, uint8_t len) {
  uint8_t wire[MAX_WIRE_LEN];
  size_t n = encode_frame(type, host_seq++, body, len, wire);
  for (size_t i = 0; i < n; ++i) Serial.rx.push_back(wire[i]);
}

static void send_command(int16_t s, int16_t t) {
  uint8_t body[COMMAND_SIZE];
  Command c = {s, t};
  pack_command(c, body);
  host_send(MSG_COMMAND, body, COMMAND_SIZE);
}

struct Received {
  int hello = 0, telemetry = 0, pong = 0;
  uint32_t last_pong = 0;
  Telemetry last_telemetry;
  Hello hello_msg;
};

// Decodes and clears everything the sketch wrote.
static Received drain() {
  static FrameParser parser;
  Received r;
  for (uint8_t b : Serial.tx) {
    if (parser.feed(b) != FrameParser::FRAME) continue;
    if (parser.type() == MSG_HELLO) {
      ++r.hello;
      r.hello_msg = unpack_hello(parser.body());
    } else if (parser.type() == MSG_TELEMETRY) {
      ++r.telemetry;
      r.last_telemetry = unpack_telemetry(parser.body());
    } else if (parser.type() == MSG_PONG) {
      ++r.pong;
      r.last_pong = get_u32(parser.body());
    }
  }
  CHECK(parser.crc_errors == 0 && parser.frame_errors == 0, "sketch output has bad frames");
  Serial.tx.clear();
  return r;
}

// Advances time 1 ms per loop() call until `until` (inclusive), sending a COMMAND every
// `period` ms when period > 0.
static void run_until(unsigned long until, int16_t s = 0, int16_t t = 0, unsigned long period = 0) {
  static unsigned long last_sent = 0;
  while (stub_millis < until) {
    ++stub_millis;
    if (period && stub_millis - last_sent >= period) {
      send_command(s, t);
      last_sent = stub_millis;
    }
    loop();
  }
}

int main() {
  // Boot: neutral pulses, HELLO with our version and limits.
  setup();
  Received r = drain();
  CHECK(r.hello == 1, "expected one HELLO at boot, got %d", r.hello);
  CHECK(r.hello_msg.version_major == PROTOCOL_VERSION_MAJOR, "version %u", r.hello_msg.version_major);
  CHECK(r.hello_msg.watchdog_ms == ROVER_WATCHDOG_MS, "watchdog %u", r.hello_msg.watchdog_ms);
  CHECK(Serial.baud == 115200, "baud %lu", Serial.baud);
  // Timer1: fast PWM mode 14, TOP = ICR1 = 39999 at 2 MHz (20 ms), non-inverting OC1A/OC1B on pins 9/10.
  CHECK(TCCR1A == (_BV(COM1A1) | _BV(COM1B1) | _BV(WGM11)) && TCCR1B == (_BV(WGM13) | _BV(WGM12) | _BV(CS11)),
        "timer1 mode %u %u", TCCR1A, TCCR1B);
  CHECK(ICR1 == 39999 && (DDRB & 0x06) == 0x06, "timer1 top %u ddrb %u", ICR1, DDRB);
  CHECK(steering_pulse_us() == 1500 && throttle_pulse_us() == 1500, "boot outputs %d %d",
        steering_pulse_us(), throttle_pulse_us());

  // Commands during ESC arming are not applied.
  run_until(1000, 5000, 2000, 33);
  CHECK(steering_pulse_us() == 1500 && throttle_pulse_us() == 1500, "arming outputs %d %d",
        steering_pulse_us(), throttle_pulse_us());
  r = drain();
  CHECK(r.telemetry >= 45 && r.telemetry <= 51, "telemetry frames in 1 s: %d", r.telemetry);
  CHECK(r.last_telemetry.mode == MODE_ARMING, "mode %u", r.last_telemetry.mode);

  // After arming, fresh commands drive the outputs: 0.5 -> 1750 us, 0.2 -> 1600 us.
  run_until(2000, 5000, 2000, 33);
  CHECK(steering_pulse_us() == 1750 && throttle_pulse_us() == 1600, "applied %d %d",
        steering_pulse_us(), throttle_pulse_us());
  r = drain();
  CHECK(r.last_telemetry.mode == MODE_AUTONOMOUS, "mode %u", r.last_telemetry.mode);
  CHECK(r.last_telemetry.steering == 5000 && r.last_telemetry.throttle == 2000, "telemetry %d %d",
        r.last_telemetry.steering, r.last_telemetry.throttle);

  // Out-of-range commands: rejected whole (the last valid one stays applied), flagged and counted.
  send_command(-32000, 32000);
  send_command(0, 10001);
  run_until(2030);  // long enough for one TELEMETRY
  CHECK(steering_pulse_us() == 1750 && throttle_pulse_us() == 1600, "after rejected %d %d", steering_pulse_us(),
        throttle_pulse_us());
  r = drain();
  CHECK((r.last_telemetry.flags & FLAG_RANGE) && r.last_telemetry.frame_errors == 2, "flags %u frame_errors %u",
        r.last_telemetry.flags, r.last_telemetry.frame_errors);

  // Watchdog: last command at 2100 -> still applied at 2349, neutral at 2350.
  stub_millis = 2099;
  send_command(3000, 1000);
  run_until(2100);
  run_until(2349);
  CHECK(steering_pulse_us() == 1650 && throttle_pulse_us() == 1550, "before watchdog %d %d",
        steering_pulse_us(), throttle_pulse_us());
  run_until(2350);
  CHECK(steering_pulse_us() == 1500 && throttle_pulse_us() == 1500, "after watchdog %d %d",
        steering_pulse_us(), throttle_pulse_us());
  run_until(2400);
  r = drain();
  CHECK(r.last_telemetry.mode == MODE_FAILSAFE && (r.last_telemetry.flags & FLAG_WATCHDOG), "mode %u flags %u",
        r.last_telemetry.mode, r.last_telemetry.flags);
  CHECK(r.last_telemetry.watchdog_trips == 1, "trips %u", r.last_telemetry.watchdog_trips);

  // Valid commands resume immediately.
  run_until(2500, -5000, -1000, 33);
  CHECK(steering_pulse_us() == 1250 && throttle_pulse_us() == 1450, "resumed %d %d",
        steering_pulse_us(), throttle_pulse_us());

  // PING -> PONG with the same token.
  uint8_t token[PING_SIZE];
  put_u32(token, 0xDEADBEEFUL);
  host_send(MSG_PING, token, PING_SIZE);
  run_until(2501);
  r = drain();
  CHECK(r.pong == 1 && r.last_pong == 0xDEADBEEFUL, "pong %d %lx", r.pong, static_cast<unsigned long>(r.last_pong));

  // E-stop latches neutral while commands keep coming, until released.
  uint8_t engage = 1;
  host_send(MSG_ESTOP, &engage, 1);
  run_until(3000, 8000, 8000, 33);
  CHECK(steering_pulse_us() == 1500 && throttle_pulse_us() == 1500, "estop %d %d",
        steering_pulse_us(), throttle_pulse_us());
  r = drain();
  CHECK(r.last_telemetry.mode == MODE_ESTOP && (r.last_telemetry.flags & FLAG_ESTOP), "mode %u",
        r.last_telemetry.mode);
  engage = 0;
  host_send(MSG_ESTOP, &engage, 1);
  run_until(3100, 8000, 8000, 33);
  CHECK(steering_pulse_us() == 1900 && throttle_pulse_us() == 1900, "released %d %d",
        steering_pulse_us(), throttle_pulse_us());

  // Garbage and a corrupted frame are counted; the next command still gets through.
  const uint8_t garbage[] = {0x13, 0x37, 0x00, 0xff, 0xfe, 0x00, 0x05, 0x10, 0x01, 0x02, 0x03, 0x04, 0x00};
  for (uint8_t b : garbage) Serial.rx.push_back(b);
  uint8_t wire[MAX_WIRE_LEN];
  uint8_t body[COMMAND_SIZE];
  Command bad = {100, 100};
  pack_command(bad, body);
  size_t n = encode_frame(MSG_COMMAND, 7, body, COMMAND_SIZE, wire);
  wire[3] ^= 0x40;  // flip a bit inside the frame
  for (size_t i = 0; i < n; ++i) Serial.rx.push_back(wire[i]);
  send_command(0, 0);
  run_until(3130);
  r = drain();
  CHECK(r.last_telemetry.crc_errors + r.last_telemetry.frame_errors >= 5, "errors crc=%u frame=%u",
        r.last_telemetry.crc_errors, r.last_telemetry.frame_errors);
  CHECK(steering_pulse_us() == 1500 && throttle_pulse_us() == 1500 &&
            r.last_telemetry.mode == MODE_AUTONOMOUS,
        "after garbage %d %d mode %u", steering_pulse_us(), throttle_pulse_us(), r.last_telemetry.mode);

  // HELLO_REQUEST -> HELLO (boards that do not reset when the port opens).
  host_send(MSG_HELLO_REQUEST, 0, 0);
  run_until(3131);
  r = drain();
  CHECK(r.hello == 1, "hello on request %d", r.hello);

  printf("sketch test: %d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
