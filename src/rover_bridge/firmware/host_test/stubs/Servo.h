// Stand-in for the Arduino Servo library: records what the sketch asked for.
#ifndef ROVER_STUB_SERVO_H
#define ROVER_STUB_SERVO_H
#include <stdint.h>

class Servo {
 public:
  uint8_t attach(int p, int lo, int hi) {
    pin = p;
    min_us = lo;
    max_us = hi;
    return 1;
  }
  void writeMicroseconds(int value) {
    requested = value;
    // The real library clamps to the attach() limits too.
    us = value < min_us ? min_us : (value > max_us ? max_us : value);
    ++writes;
  }
  int pin = -1, min_us = 544, max_us = 2400, us = 0, requested = 0, writes = 0;
};
#endif
