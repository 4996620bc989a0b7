// Host-side driver for rover_protocol.h: reads commands on stdin, prints results on stdout.
//
// The Python tests (rover_bridge.firmware_host) feed it the shared test vectors and
// firmware timelines, and compare its answers with protocol_vectors.json and with the
// Python twin of the firmware. Hex strings are lowercase; "-" stands for no bytes.
//
//   crc HEX                      -> crc XXXX
//   cobs_encode HEX              -> hex HEX
//   cobs_decode HEX              -> hex HEX | error
//   encode TYPE SEQ V1 V2 ...    -> hex WIRE            (field values in PROTOCOL.md order)
//   decode HEX                   -> frame TYPE SEQ k=v ... | crc_error | frame_error | range_error ..., then counts
//   fw_begin MS | fw_feed MS HEX | fw_update MS RC_S RC_T | fw_telemetry MS | fw_hello
//   config                       -> config watchdog_ms=N ... (the compile-time configuration)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <sstream>
#include <iostream>
#include <vector>

#include "rover_protocol.h"

using namespace rover;

static std::vector<uint8_t> from_hex(const std::string& s) {
  std::vector<uint8_t> out;
  if (s == "-") return out;
  for (size_t i = 0; i + 1 < s.size(); i += 2)
    out.push_back(static_cast<uint8_t>(strtoul(s.substr(i, 2).c_str(), 0, 16)));
  return out;
}

static std::string to_hex(const uint8_t* p, size_t n) {
  if (n == 0) return "-";
  std::string out;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    snprintf(b, sizeof(b), "%02x", p[i]);
    out += b;
  }
  return out;
}

static const char* type_name(uint8_t t) {
  switch (t) {
    case MSG_HELLO: return "HELLO";
    case MSG_HELLO_REQUEST: return "HELLO_REQUEST";
    case MSG_COMMAND: return "COMMAND";
    case MSG_ESTOP: return "ESTOP";
    case MSG_TELEMETRY: return "TELEMETRY";
    case MSG_PING: return "PING";
    case MSG_PONG: return "PONG";
    default: return "UNKNOWN";
  }
}

static int type_of(const std::string& name) {
  const uint8_t all[] = {MSG_HELLO, MSG_HELLO_REQUEST, MSG_COMMAND, MSG_ESTOP, MSG_TELEMETRY, MSG_PING, MSG_PONG};
  for (uint8_t t : all)
    if (name == type_name(t)) return t;
  return -1;
}

static void print_fields(uint8_t type, const uint8_t* b) {
  switch (type) {
    case MSG_HELLO: {
      Hello h = unpack_hello(b);
      printf(" version_major=%u version_minor=%u watchdog_ms=%u telemetry_period_ms=%u arming_ms=%u"
             " steering_min_us=%u steering_center_us=%u steering_max_us=%u"
             " throttle_min_us=%u throttle_neutral_us=%u throttle_max_us=%u",
             h.version_major, h.version_minor, h.watchdog_ms, h.telemetry_period_ms, h.arming_ms,
             h.steering_min_us, h.steering_center_us, h.steering_max_us, h.throttle_min_us,
             h.throttle_neutral_us, h.throttle_max_us);
      break;
    }
    case MSG_COMMAND: {
      Command c = unpack_command(b);
      printf(" steering=%d throttle=%d", c.steering, c.throttle);
      break;
    }
    case MSG_ESTOP: printf(" engage=%u", b[0]); break;
    case MSG_TELEMETRY: {
      Telemetry t = unpack_telemetry(b);
      printf(" ack_seq=%u mode=%u flags=%u steering_us=%u throttle_us=%u steering=%d throttle=%d"
             " rc_steering_us=%u rc_throttle_us=%u crc_errors=%u frame_errors=%u watchdog_trips=%u"
             " uptime_ms=%lu",
             t.ack_seq, t.mode, t.flags, t.steering_us, t.throttle_us, t.steering, t.throttle,
             t.rc_steering_us, t.rc_throttle_us, t.crc_errors, t.frame_errors, t.watchdog_trips,
             static_cast<unsigned long>(t.uptime_ms));
      break;
    }
    case MSG_PING:
    case MSG_PONG: printf(" token=%lu", static_cast<unsigned long>(get_u32(b))); break;
    default: break;
  }
}

static size_t pack_fields(int type, std::istringstream& in, uint8_t* body) {
  std::vector<long long> v;
  long long x;
  while (in >> x) v.push_back(x);
  switch (type) {
    case MSG_HELLO: {
      if (v.size() != 11) return 999;
      Hello h = {static_cast<uint8_t>(v[0]), static_cast<uint8_t>(v[1]), static_cast<uint16_t>(v[2]),
                 static_cast<uint16_t>(v[3]), static_cast<uint16_t>(v[4]), static_cast<uint16_t>(v[5]),
                 static_cast<uint16_t>(v[6]), static_cast<uint16_t>(v[7]), static_cast<uint16_t>(v[8]),
                 static_cast<uint16_t>(v[9]), static_cast<uint16_t>(v[10])};
      pack_hello(h, body);
      return HELLO_SIZE;
    }
    case MSG_HELLO_REQUEST: return v.empty() ? 0 : 999;
    case MSG_COMMAND: {
      if (v.size() != 2) return 999;
      Command c = {static_cast<int16_t>(v[0]), static_cast<int16_t>(v[1])};
      pack_command(c, body);
      return COMMAND_SIZE;
    }
    case MSG_ESTOP:
      if (v.size() != 1) return 999;
      body[0] = static_cast<uint8_t>(v[0]);
      return ESTOP_SIZE;
    case MSG_TELEMETRY: {
      if (v.size() != 13) return 999;
      Telemetry t = {static_cast<uint8_t>(v[0]), static_cast<uint8_t>(v[1]), static_cast<uint8_t>(v[2]),
                     static_cast<uint16_t>(v[3]), static_cast<uint16_t>(v[4]), static_cast<int16_t>(v[5]),
                     static_cast<int16_t>(v[6]), static_cast<uint16_t>(v[7]), static_cast<uint16_t>(v[8]),
                     static_cast<uint16_t>(v[9]), static_cast<uint16_t>(v[10]), static_cast<uint16_t>(v[11]),
                     static_cast<uint32_t>(v[12])};
      pack_telemetry(t, body);
      return TELEMETRY_SIZE;
    }
    case MSG_PING:
    case MSG_PONG:
      if (v.size() != 1) return 999;
      put_u32(body, static_cast<uint32_t>(v[0]));
      return PING_SIZE;
    default: return 999;
  }
}

int main() {
  Firmware fw;
  fw.begin(0);
  std::string line;
  uint8_t out[512];
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    if (!(in >> cmd)) continue;
    if (cmd == "crc") {
      std::string h;
      in >> h;
      std::vector<uint8_t> d = from_hex(h);
      printf("crc %04x\n", crc16(d.data(), d.size()));
    } else if (cmd == "cobs_encode") {
      std::string h;
      in >> h;
      std::vector<uint8_t> d = from_hex(h);
      size_t n = cobs_encode(d.data(), d.size(), out);
      printf("hex %s\n", to_hex(out, n).c_str());
    } else if (cmd == "cobs_decode") {
      std::string h;
      in >> h;
      std::vector<uint8_t> d = from_hex(h);
      size_t n = 0;
      if (cobs_decode(d.data(), d.size(), out, sizeof(out), &n))
        printf("hex %s\n", to_hex(out, n).c_str());
      else
        printf("error\n");
    } else if (cmd == "encode") {
      std::string name;
      unsigned seq;
      in >> name >> seq;
      int type = type_of(name);
      uint8_t body[64];
      size_t len = type < 0 ? 999 : pack_fields(type, in, body);
      if (len == 999) {
        printf("error bad encode arguments\n");
      } else {
        size_t n = encode_frame(static_cast<uint8_t>(type), static_cast<uint8_t>(seq), body,
                                static_cast<uint8_t>(len), out);
        printf("hex %s\n", to_hex(out, n).c_str());
      }
    } else if (cmd == "decode") {
      std::string h;
      in >> h;
      std::vector<uint8_t> d = from_hex(h);
      FrameParser parser;
      for (uint8_t b : d) {
        FrameParser::Result r = parser.feed(b);
        if (r == FrameParser::FRAME) {
          printf("frame %s %u", type_name(parser.type()), parser.seq());
          print_fields(parser.type(), parser.body());
          printf("\n");
        } else if (r == FrameParser::CRC_ERROR) {
          printf("crc_error\n");
        } else if (r == FrameParser::FRAME_ERROR) {
          printf("frame_error\n");
        } else if (r == FrameParser::RANGE_ERROR) {
          printf("range_error\n");
        }
      }
      printf("counts crc_errors=%u frame_errors=%u range_errors=%u\n", parser.crc_errors, parser.frame_errors,
             parser.range_errors);
    } else if (cmd == "fw_begin") {
      unsigned long ms;
      in >> ms;
      fw.begin(static_cast<uint32_t>(ms));
      printf("ok\n");
    } else if (cmd == "fw_feed") {
      unsigned long ms;
      std::string h;
      in >> ms >> h;
      std::vector<uint8_t> d = from_hex(h);
      for (uint8_t b : d) {
        size_t n = fw.on_byte(b, static_cast<uint32_t>(ms), out);
        if (n) printf("tx %s\n", to_hex(out, n).c_str());
      }
      printf("ok\n");
    } else if (cmd == "fw_update") {
      unsigned long ms, rs, rt;
      in >> ms >> rs >> rt;
      fw.update(static_cast<uint32_t>(ms), static_cast<uint16_t>(rs), static_cast<uint16_t>(rt));
      printf("state mode=%u flags=%u steering_us=%u throttle_us=%u trips=%u\n", fw.mode(), fw.flags(),
             fw.steering_us(), fw.throttle_us(), fw.watchdog_trips());
    } else if (cmd == "fw_telemetry") {
      unsigned long ms;
      in >> ms;
      size_t n = fw.telemetry_frame(static_cast<uint32_t>(ms), out);
      printf("tx %s\n", to_hex(out, n).c_str());
    } else if (cmd == "fw_hello") {
      size_t n = fw.hello_frame(out);
      printf("tx %s\n", to_hex(out, n).c_str());
    } else if (cmd == "config") {
      // the compile-time configuration, named and ordered as the Python twin's FirmwareConfig
      printf("config watchdog_ms=%d arming_ms=%d telemetry_period_ms=%d steering_min_us=%d steering_center_us=%d"
             " steering_max_us=%d throttle_min_us=%d throttle_neutral_us=%d throttle_max_us=%d"
             " rc_manual_override=%d\n",
             ROVER_WATCHDOG_MS, ROVER_ARMING_MS, ROVER_TELEMETRY_MS, ROVER_STEERING_MIN_US, ROVER_STEERING_CENTER_US,
             ROVER_STEERING_MAX_US, ROVER_THROTTLE_MIN_US, ROVER_THROTTLE_NEUTRAL_US, ROVER_THROTTLE_MAX_US,
             ROVER_RC_MANUAL_OVERRIDE);
    } else {
      printf("error unknown command %s\n", cmd.c_str());
    }
    fflush(stdout);
  }
  return 0;
}
