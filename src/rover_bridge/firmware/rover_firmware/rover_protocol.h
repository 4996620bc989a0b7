// Rover serial protocol, watchdog and output clamping for the Arduino.
//
// Plain C++11 with no Arduino dependency: the sketch (rover_firmware.ino) and
// the host tests (g++) compile this same file. It must agree with
// rover_bridge/protocol.py and with the Python twin rover_bridge/twin/firmware_twin.py
// (FirmwareCore); protocol_vectors.json and the mirror tests check that. See PROTOCOL.md.
#ifndef ROVER_PROTOCOL_H
#define ROVER_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// ---- compile-time configuration (override with -D or before the include) ----
// These #defines are the one place the defaults live: the Python twin
// (rover_bridge.twin.firmware_twin.FirmwareConfig) reads them from this file.
#ifndef ROVER_WATCHDOG_MS
#define ROVER_WATCHDOG_MS 250  // no valid COMMAND for this long -> neutral
#endif
#ifndef ROVER_ARMING_MS
#define ROVER_ARMING_MS 1500  // ESC arming: neutral pulses after boot
#endif
#ifndef ROVER_TELEMETRY_MS
#define ROVER_TELEMETRY_MS 20  // TELEMETRY period (50 Hz)
#endif
#ifndef ROVER_STEERING_MIN_US
#define ROVER_STEERING_MIN_US 1000
#endif
#ifndef ROVER_STEERING_CENTER_US
#define ROVER_STEERING_CENTER_US 1500
#endif
#ifndef ROVER_STEERING_MAX_US
#define ROVER_STEERING_MAX_US 2000
#endif
#ifndef ROVER_THROTTLE_MIN_US
#define ROVER_THROTTLE_MIN_US 1000
#endif
#ifndef ROVER_THROTTLE_NEUTRAL_US
#define ROVER_THROTTLE_NEUTRAL_US 1500
#endif
#ifndef ROVER_THROTTLE_MAX_US
#define ROVER_THROTTLE_MAX_US 2000
#endif
#ifndef ROVER_PROTOCOL_VERSION_MAJOR
#define ROVER_PROTOCOL_VERSION_MAJOR 1  // change only to test a bridge refusing another version
#endif
#ifndef ROVER_RC_MANUAL_OVERRIDE
#define ROVER_RC_MANUAL_OVERRIDE 0  // 1: valid RC receiver pulses take over (MANUAL mode)
#endif

namespace rover {

const uint8_t PROTOCOL_VERSION_MAJOR = ROVER_PROTOCOL_VERSION_MAJOR;
const uint8_t PROTOCOL_VERSION_MINOR = 1;
const int16_t SCALE = 10000;  // normalized [-1, 1] in units of 1/SCALE
const uint8_t MAX_ENCODED_LEN = 64;
const uint8_t MAX_PAYLOAD_LEN = MAX_ENCODED_LEN - 1;
const uint8_t MAX_WIRE_LEN = MAX_ENCODED_LEN + 2;  // with both delimiters
const uint16_t RC_MIN_VALID_US = 800;
const uint16_t RC_MAX_VALID_US = 2200;
// Range checks: no firmware build can output a pulse outside this window (PROTOCOL.md).
const uint16_t PULSE_MIN_US = 500;
const uint16_t PULSE_MAX_US = 2500;

static_assert(ROVER_STEERING_MIN_US <= ROVER_STEERING_CENTER_US &&
              ROVER_STEERING_CENTER_US <= ROVER_STEERING_MAX_US, "steering limits out of order");
static_assert(ROVER_THROTTLE_MIN_US <= ROVER_THROTTLE_NEUTRAL_US &&
              ROVER_THROTTLE_NEUTRAL_US <= ROVER_THROTTLE_MAX_US, "throttle limits out of order");
static_assert(ROVER_STEERING_MIN_US >= PULSE_MIN_US && ROVER_STEERING_MAX_US <= PULSE_MAX_US &&
              ROVER_THROTTLE_MIN_US >= PULSE_MIN_US && ROVER_THROTTLE_MAX_US <= PULSE_MAX_US,
              "pulse limits outside [PULSE_MIN_US, PULSE_MAX_US]");

enum MsgType {
  MSG_HELLO = 0x01,
  MSG_HELLO_REQUEST = 0x02,
  MSG_COMMAND = 0x10,
  MSG_ESTOP = 0x11,
  MSG_TELEMETRY = 0x20,
  MSG_PING = 0x30,
  MSG_PONG = 0x31,
};

enum Mode { MODE_ARMING = 0, MODE_AUTONOMOUS = 1, MODE_MANUAL = 2, MODE_FAILSAFE = 3, MODE_ESTOP = 4 };

enum Flags {
  FLAG_WATCHDOG = 0x01,
  FLAG_ESTOP = 0x02,
  FLAG_ARMING = 0x04,
  FLAG_RC_PRESENT = 0x08,
  FLAG_RANGE = 0x10,  // a frame was rejected for out-of-range fields since the last valid COMMAND
};
const uint8_t KNOWN_FLAGS = FLAG_WATCHDOG | FLAG_ESTOP | FLAG_ARMING | FLAG_RC_PRESENT | FLAG_RANGE;

const uint8_t HELLO_SIZE = 20;
const uint8_t HELLO_REQUEST_SIZE = 0;
const uint8_t COMMAND_SIZE = 4;
const uint8_t ESTOP_SIZE = 1;
const uint8_t TELEMETRY_SIZE = 25;
const uint8_t PING_SIZE = 4;
const uint8_t PONG_SIZE = 4;

// Body size of a message type, or -1 when the type is unknown.
inline int body_size(uint8_t type) {
  switch (type) {
    case MSG_HELLO: return HELLO_SIZE;
    case MSG_HELLO_REQUEST: return HELLO_REQUEST_SIZE;
    case MSG_COMMAND: return COMMAND_SIZE;
    case MSG_ESTOP: return ESTOP_SIZE;
    case MSG_TELEMETRY: return TELEMETRY_SIZE;
    case MSG_PING: return PING_SIZE;
    case MSG_PONG: return PONG_SIZE;
    default: return -1;
  }
}

// ---- CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection) ----
inline uint16_t crc16(const uint8_t* data, size_t len, uint16_t crc = 0xFFFF) {
  for (size_t i = 0; i < len; ++i) {
    crc ^= static_cast<uint16_t>(data[i]) << 8;
    for (uint8_t bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

// ---- COBS ----
// Encodes len bytes into out (room for len + len / 254 + 1 bytes); returns the encoded length.
inline size_t cobs_encode(const uint8_t* in, size_t len, uint8_t* out) {
  size_t out_len = 1;
  size_t code_index = 0;
  uint8_t code = 1;
  for (size_t i = 0; i < len; ++i) {
    if (in[i] != 0) {
      out[out_len++] = in[i];
      ++code;
    }
    if (in[i] == 0 || code == 0xFF) {
      out[code_index] = code;
      code = 1;
      code_index = out_len;
      if (in[i] == 0 || i + 1 < len) ++out_len;  // a full block at the very end needs no new block
    }
  }
  if (code_index < out_len) out[code_index] = code;
  return out_len;
}

// Decodes a delimiter-free block; false when malformed or longer than out_cap.
inline bool cobs_decode(const uint8_t* in, size_t len, uint8_t* out, size_t out_cap, size_t* out_len) {
  size_t i = 0;
  size_t n = 0;
  while (i < len) {
    uint8_t code = in[i++];
    if (code == 0) return false;
    size_t end = i + code - 1;
    if (end > len) return false;
    while (i < end) {
      if (n >= out_cap) return false;
      out[n++] = in[i++];
    }
    if (code != 0xFF && i < len) {
      if (n >= out_cap) return false;
      out[n++] = 0;
    }
  }
  *out_len = n;
  return true;
}

// ---- little-endian field helpers ----
inline void put_u16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v); p[1] = static_cast<uint8_t>(v >> 8); }
inline void put_u32(uint8_t* p, uint32_t v) {
  put_u16(p, static_cast<uint16_t>(v));
  put_u16(p + 2, static_cast<uint16_t>(v >> 16));
}
inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8)); }
inline uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(get_u16(p)) | (static_cast<uint32_t>(get_u16(p + 2)) << 16);
}
inline int16_t get_i16(const uint8_t* p) { return static_cast<int16_t>(get_u16(p)); }

// ---- messages ----
struct Hello {
  uint8_t version_major, version_minor;
  uint16_t watchdog_ms, telemetry_period_ms, arming_ms;
  uint16_t steering_min_us, steering_center_us, steering_max_us;
  uint16_t throttle_min_us, throttle_neutral_us, throttle_max_us;
};
struct Command { int16_t steering, throttle; };
struct Estop { uint8_t engage; };
struct Ping { uint32_t token; };
struct Telemetry {
  uint8_t ack_seq, mode, flags;
  uint16_t steering_us, throttle_us;
  int16_t steering, throttle;
  uint16_t rc_steering_us, rc_throttle_us;
  uint16_t crc_errors, frame_errors, watchdog_trips;
  uint32_t uptime_ms;
};

inline void pack_hello(const Hello& m, uint8_t* b) {
  b[0] = m.version_major;
  b[1] = m.version_minor;
  put_u16(b + 2, m.watchdog_ms);
  put_u16(b + 4, m.telemetry_period_ms);
  put_u16(b + 6, m.arming_ms);
  put_u16(b + 8, m.steering_min_us);
  put_u16(b + 10, m.steering_center_us);
  put_u16(b + 12, m.steering_max_us);
  put_u16(b + 14, m.throttle_min_us);
  put_u16(b + 16, m.throttle_neutral_us);
  put_u16(b + 18, m.throttle_max_us);
}
inline Hello unpack_hello(const uint8_t* b) {
  Hello m;
  m.version_major = b[0];
  m.version_minor = b[1];
  m.watchdog_ms = get_u16(b + 2);
  m.telemetry_period_ms = get_u16(b + 4);
  m.arming_ms = get_u16(b + 6);
  m.steering_min_us = get_u16(b + 8);
  m.steering_center_us = get_u16(b + 10);
  m.steering_max_us = get_u16(b + 12);
  m.throttle_min_us = get_u16(b + 14);
  m.throttle_neutral_us = get_u16(b + 16);
  m.throttle_max_us = get_u16(b + 18);
  return m;
}
inline void pack_command(const Command& m, uint8_t* b) {
  put_u16(b, static_cast<uint16_t>(m.steering));
  put_u16(b + 2, static_cast<uint16_t>(m.throttle));
}
inline Command unpack_command(const uint8_t* b) {
  Command m;
  m.steering = get_i16(b);
  m.throttle = get_i16(b + 2);
  return m;
}
inline void pack_telemetry(const Telemetry& m, uint8_t* b) {
  b[0] = m.ack_seq;
  b[1] = m.mode;
  b[2] = m.flags;
  put_u16(b + 3, m.steering_us);
  put_u16(b + 5, m.throttle_us);
  put_u16(b + 7, static_cast<uint16_t>(m.steering));
  put_u16(b + 9, static_cast<uint16_t>(m.throttle));
  put_u16(b + 11, m.rc_steering_us);
  put_u16(b + 13, m.rc_throttle_us);
  put_u16(b + 15, m.crc_errors);
  put_u16(b + 17, m.frame_errors);
  put_u16(b + 19, m.watchdog_trips);
  put_u32(b + 21, m.uptime_ms);
}
inline Telemetry unpack_telemetry(const uint8_t* b) {
  Telemetry m;
  m.ack_seq = b[0];
  m.mode = b[1];
  m.flags = b[2];
  m.steering_us = get_u16(b + 3);
  m.throttle_us = get_u16(b + 5);
  m.steering = get_i16(b + 7);
  m.throttle = get_i16(b + 9);
  m.rc_steering_us = get_u16(b + 11);
  m.rc_throttle_us = get_u16(b + 13);
  m.crc_errors = get_u16(b + 15);
  m.frame_errors = get_u16(b + 17);
  m.watchdog_trips = get_u16(b + 19);
  m.uptime_ms = get_u32(b + 21);
  return m;
}

// Writes 0x00, COBS(type, seq, body, crc16 LE), 0x00 into out (MAX_WIRE_LEN bytes); returns the length.
inline size_t encode_frame(uint8_t type, uint8_t seq, const uint8_t* body, uint8_t body_len, uint8_t* out) {
  uint8_t payload[MAX_PAYLOAD_LEN];
  payload[0] = type;
  payload[1] = seq;
  if (body_len) memcpy(payload + 2, body, body_len);
  uint16_t crc = crc16(payload, 2 + body_len);
  put_u16(payload + 2 + body_len, crc);
  out[0] = 0;
  size_t n = cobs_encode(payload, 4 + body_len, out + 1);
  out[1 + n] = 0;
  return n + 2;
}

// ---- range checks: a CRC-valid frame with impossible fields is dropped (same rules as protocol.py) ----
inline bool normalized_ok(const uint8_t* p) {
  int16_t v = get_i16(p);
  return v >= -SCALE && v <= SCALE;
}
inline bool pulse_ok(const uint8_t* p) {
  uint16_t v = get_u16(p);
  return v >= PULSE_MIN_US && v <= PULSE_MAX_US;
}
inline bool limits_ok(const uint8_t* p) {  // min, centre, max: ordered, inside the pulse window
  return pulse_ok(p) && pulse_ok(p + 4) && get_u16(p) <= get_u16(p + 2) && get_u16(p + 2) <= get_u16(p + 4);
}
// body has the size of its type. A HELLO of another major version is not checked (it must be refusable).
inline bool fields_in_range(uint8_t type, const uint8_t* body) {
  switch (type) {
    case MSG_COMMAND: return normalized_ok(body) && normalized_ok(body + 2);
    case MSG_ESTOP: return body[0] <= 1;
    case MSG_TELEMETRY:
      return body[1] <= MODE_ESTOP && (body[2] & ~KNOWN_FLAGS) == 0 && pulse_ok(body + 3) && pulse_ok(body + 5) &&
             normalized_ok(body + 7) && normalized_ok(body + 9);
    case MSG_HELLO:
      return body[0] != PROTOCOL_VERSION_MAJOR ||
             (get_u16(body + 2) != 0 && get_u16(body + 4) != 0 && limits_ok(body + 8) && limits_ok(body + 14));
    default: return true;
  }
}

// ---- stream parser: one byte at a time, resynchronising on every 0x00 ----
class FrameParser {
 public:
  enum Result { NONE = 0, FRAME = 1, CRC_ERROR = 2, FRAME_ERROR = 3, RANGE_ERROR = 4 };

  FrameParser() { reset(); }
  void reset() {
    len_ = 0;
    overflow_ = false;
    crc_errors = 0;
    frame_errors = 0;
    range_errors = 0;
  }

  Result feed(uint8_t byte) {
    if (byte != 0) {
      if (overflow_) return NONE;
      if (len_ == MAX_ENCODED_LEN) {
        overflow_ = true;  // counted once, at the delimiter
        len_ = 0;
        return NONE;
      }
      buf_[len_++] = byte;
      return NONE;
    }
    if (overflow_) {
      overflow_ = false;
      ++frame_errors;
      return FRAME_ERROR;
    }
    if (len_ == 0) return NONE;  // empty segment: idle
    uint8_t n = len_;
    len_ = 0;
    size_t payload_len = 0;
    if (!cobs_decode(buf_, n, payload_, sizeof(payload_), &payload_len) || payload_len < 4) {
      ++frame_errors;
      return FRAME_ERROR;
    }
    uint16_t received = get_u16(payload_ + payload_len - 2);
    if (crc16(payload_, payload_len - 2) != received) {
      ++crc_errors;
      return CRC_ERROR;
    }
    int expected = body_size(payload_[0]);
    if (expected < 0 || static_cast<size_t>(expected) != payload_len - 4) {
      ++frame_errors;
      return FRAME_ERROR;
    }
    if (!fields_in_range(payload_[0], payload_ + 2)) {
      ++range_errors;
      return RANGE_ERROR;
    }
    return FRAME;
  }

  // Valid after feed() returned FRAME.
  uint8_t type() const { return payload_[0]; }
  uint8_t seq() const { return payload_[1]; }
  const uint8_t* body() const { return payload_ + 2; }

  uint16_t crc_errors;
  uint16_t frame_errors;
  uint16_t range_errors;

 private:
  uint8_t buf_[MAX_ENCODED_LEN];
  uint8_t payload_[MAX_PAYLOAD_LEN];
  uint8_t len_;
  bool overflow_;
};

// ---- output mapping ----
inline int16_t clamp_normalized(int16_t n) { return n > SCALE ? SCALE : (n < -SCALE ? -SCALE : n); }
inline uint16_t clamp_us(uint16_t us, uint16_t lo, uint16_t hi) { return us < lo ? lo : (us > hi ? hi : us); }

// [-SCALE, SCALE] -> microseconds, piecewise linear through (lo, mid, hi), rounded half up.
inline uint16_t normalized_to_us(int16_t n, uint16_t lo, uint16_t mid, uint16_t hi) {
  n = clamp_normalized(n);
  if (n >= 0) return static_cast<uint16_t>(mid + (static_cast<uint32_t>(n) * (hi - mid) + SCALE / 2) / SCALE);
  return static_cast<uint16_t>(mid - (static_cast<uint32_t>(-n) * (mid - lo) + SCALE / 2) / SCALE);
}

inline int16_t us_to_normalized(uint16_t us, uint16_t lo, uint16_t mid, uint16_t hi) {
  us = clamp_us(us, lo, hi);
  if (us >= mid) {
    uint32_t span = hi - mid;
    if (span == 0) return 0;
    return static_cast<int16_t>((static_cast<uint32_t>(us - mid) * SCALE + span / 2) / span);
  }
  uint32_t span = mid - lo;
  return static_cast<int16_t>(-static_cast<int32_t>((static_cast<uint32_t>(mid - us) * SCALE + span / 2) / span));
}

// True once `duration` ms have passed since `since` (wrap-safe on the uint32 millis() clock).
inline bool elapsed(uint32_t now_ms, uint32_t since_ms, uint32_t duration_ms) {
  return static_cast<uint32_t>(now_ms - since_ms) >= duration_ms;
}

// ---- the firmware's logic: arming, watchdog, e-stop latch, manual override, range rejection ----
// Time is the Arduino millis() clock (uint32, wraps after 49 days; all comparisons are wrap-safe).
class Firmware {
 public:
  void begin(uint32_t now_ms) {
    parser_.reset();
    boot_ms_ = now_ms;
    last_cmd_ms_ = now_ms;
    have_cmd_ = false;
    cmd_.steering = 0;
    cmd_.throttle = 0;
    ack_seq_ = 0;
    tx_seq_ = 0;
    estop_ = false;
    range_flag_ = false;
    arming_ = true;
    tripped_ = true;
    watchdog_trips_ = 0;
    mode_ = MODE_ARMING;
    rc_steering_us_ = 0;
    rc_throttle_us_ = 0;
    set_neutral();
  }

  // Feeds one received byte. A reply (HELLO or PONG) is written to reply and its length returned.
  // An out-of-range frame is rejected whole: nothing applied, the last valid command and
  // its watchdog keep running.
  size_t on_byte(uint8_t byte, uint32_t now_ms, uint8_t* reply) {
    FrameParser::Result result = parser_.feed(byte);
    if (result == FrameParser::RANGE_ERROR) range_flag_ = true;
    if (result != FrameParser::FRAME) return 0;
    const uint8_t* body = parser_.body();
    switch (parser_.type()) {
      case MSG_COMMAND: {
        cmd_ = unpack_command(body);
        range_flag_ = false;
        have_cmd_ = true;
        last_cmd_ms_ = now_ms;
        ack_seq_ = parser_.seq();
        return 0;
      }
      case MSG_ESTOP:
        estop_ = body[0] != 0;
        return 0;
      case MSG_PING: {
        uint8_t pong[PONG_SIZE];
        memcpy(pong, body, PONG_SIZE);
        return encode_frame(MSG_PONG, tx_seq_++, pong, PONG_SIZE, reply);
      }
      case MSG_HELLO_REQUEST:
        return hello_frame(reply);
      default:
        return 0;  // valid frame not meant for the Arduino: ignored
    }
  }

  // Recomputes mode and outputs; call every loop with the RC pulse widths (0 = none).
  void update(uint32_t now_ms, uint16_t rc_steering_us, uint16_t rc_throttle_us) {
    rc_steering_us_ = rc_steering_us;
    rc_throttle_us_ = rc_throttle_us;
    if (arming_ && elapsed(now_ms, boot_ms_, ROVER_ARMING_MS)) arming_ = false;
    bool fresh = have_cmd_ && !elapsed(now_ms, last_cmd_ms_, ROVER_WATCHDOG_MS);
    if (!fresh && !tripped_ && have_cmd_) ++watchdog_trips_;
    tripped_ = !fresh;

    if (arming_) {
      mode_ = MODE_ARMING;
      set_neutral();
    } else if (estop_) {
      mode_ = MODE_ESTOP;
      set_neutral();
    } else if (ROVER_RC_MANUAL_OVERRIDE && rc_present()) {
      mode_ = MODE_MANUAL;
      steering_us_ = clamp_us(rc_steering_us, ROVER_STEERING_MIN_US, ROVER_STEERING_MAX_US);
      throttle_us_ = clamp_us(rc_throttle_us, ROVER_THROTTLE_MIN_US, ROVER_THROTTLE_MAX_US);
    } else if (fresh) {
      mode_ = MODE_AUTONOMOUS;
      steering_us_ = normalized_to_us(cmd_.steering, ROVER_STEERING_MIN_US, ROVER_STEERING_CENTER_US,
                                      ROVER_STEERING_MAX_US);
      throttle_us_ = normalized_to_us(cmd_.throttle, ROVER_THROTTLE_MIN_US, ROVER_THROTTLE_NEUTRAL_US,
                                      ROVER_THROTTLE_MAX_US);
    } else {
      mode_ = MODE_FAILSAFE;
      set_neutral();
    }
    // Final safety net, whatever the branch above computed.
    steering_us_ = clamp_us(steering_us_, ROVER_STEERING_MIN_US, ROVER_STEERING_MAX_US);
    throttle_us_ = clamp_us(throttle_us_, ROVER_THROTTLE_MIN_US, ROVER_THROTTLE_MAX_US);
  }

  size_t hello_frame(uint8_t* out) {
    Hello h;
    h.version_major = PROTOCOL_VERSION_MAJOR;
    h.version_minor = PROTOCOL_VERSION_MINOR;
    h.watchdog_ms = ROVER_WATCHDOG_MS;
    h.telemetry_period_ms = ROVER_TELEMETRY_MS;
    h.arming_ms = ROVER_ARMING_MS;
    h.steering_min_us = ROVER_STEERING_MIN_US;
    h.steering_center_us = ROVER_STEERING_CENTER_US;
    h.steering_max_us = ROVER_STEERING_MAX_US;
    h.throttle_min_us = ROVER_THROTTLE_MIN_US;
    h.throttle_neutral_us = ROVER_THROTTLE_NEUTRAL_US;
    h.throttle_max_us = ROVER_THROTTLE_MAX_US;
    uint8_t body[HELLO_SIZE];
    pack_hello(h, body);
    return encode_frame(MSG_HELLO, tx_seq_++, body, HELLO_SIZE, out);
  }

  Telemetry telemetry(uint32_t now_ms) const {
    Telemetry t;
    t.ack_seq = ack_seq_;
    t.mode = static_cast<uint8_t>(mode_);
    t.flags = flags();
    t.steering_us = steering_us_;
    t.throttle_us = throttle_us_;
    t.steering = us_to_normalized(steering_us_, ROVER_STEERING_MIN_US, ROVER_STEERING_CENTER_US,
                                  ROVER_STEERING_MAX_US);
    t.throttle = us_to_normalized(throttle_us_, ROVER_THROTTLE_MIN_US, ROVER_THROTTLE_NEUTRAL_US,
                                  ROVER_THROTTLE_MAX_US);
    t.rc_steering_us = rc_steering_us_;
    t.rc_throttle_us = rc_throttle_us_;
    t.crc_errors = parser_.crc_errors;
    t.frame_errors = static_cast<uint16_t>(parser_.frame_errors + parser_.range_errors);  // all dropped frames
    t.watchdog_trips = watchdog_trips_;
    t.uptime_ms = now_ms - boot_ms_;
    return t;
  }

  size_t telemetry_frame(uint32_t now_ms, uint8_t* out) {
    uint8_t body[TELEMETRY_SIZE];
    pack_telemetry(telemetry(now_ms), body);
    return encode_frame(MSG_TELEMETRY, tx_seq_++, body, TELEMETRY_SIZE, out);
  }

  uint8_t flags() const {
    uint8_t f = 0;
    if (tripped_) f |= FLAG_WATCHDOG;
    if (estop_) f |= FLAG_ESTOP;
    if (arming_) f |= FLAG_ARMING;
    if (rc_present()) f |= FLAG_RC_PRESENT;
    if (range_flag_) f |= FLAG_RANGE;
    return f;
  }

  uint16_t steering_us() const { return steering_us_; }
  uint16_t throttle_us() const { return throttle_us_; }
  Mode mode() const { return mode_; }
  uint16_t watchdog_trips() const { return watchdog_trips_; }
  const FrameParser& parser() const { return parser_; }

 private:
  bool rc_present() const {
    return rc_steering_us_ >= RC_MIN_VALID_US && rc_steering_us_ <= RC_MAX_VALID_US &&
           rc_throttle_us_ >= RC_MIN_VALID_US && rc_throttle_us_ <= RC_MAX_VALID_US;
  }
  void set_neutral() {
    steering_us_ = ROVER_STEERING_CENTER_US;
    throttle_us_ = ROVER_THROTTLE_NEUTRAL_US;
  }

  FrameParser parser_;
  uint32_t boot_ms_ = 0;
  uint32_t last_cmd_ms_ = 0;
  bool have_cmd_ = false;
  Command cmd_ = {0, 0};
  uint8_t ack_seq_ = 0;
  uint8_t tx_seq_ = 0;
  bool estop_ = false;
  bool range_flag_ = false;
  bool arming_ = true;
  bool tripped_ = true;
  uint16_t watchdog_trips_ = 0;
  Mode mode_ = MODE_ARMING;
  uint16_t rc_steering_us_ = 0;
  uint16_t rc_throttle_us_ = 0;
  uint16_t steering_us_ = ROVER_STEERING_CENTER_US;
  uint16_t throttle_us_ = ROVER_THROTTLE_NEUTRAL_US;
};

}  // namespace rover

#endif  // ROVER_PROTOCOL_H
