// Minimal stand-in for the Arduino core, just enough to compile and run the sketch on a host.
// Time, the serial port and the Timer1 registers are driven/read by the test (sketch_test.cpp).
#ifndef ROVER_STUB_ARDUINO_H
#define ROVER_STUB_ARDUINO_H
#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <vector>

#define INPUT 0
#define CHANGE 1

// ATmega328P registers the sketch programs (Timer1 PWM on pins 9/10), as plain variables.
extern uint8_t TCCR1A, TCCR1B, DDRB;
extern uint16_t ICR1, OCR1A, OCR1B, TCNT1;
#define _BV(bit) (1 << (bit))
#define DDB1 1
#define DDB2 2
#define WGM11 1
#define COM1B1 5
#define COM1A1 7
#define CS11 1
#define WGM12 3
#define WGM13 4

extern unsigned long stub_millis;
// unsigned long is 32 bits on AVR: return uint32_t so the host wraps like the board.
inline uint32_t millis() { return static_cast<uint32_t>(stub_millis); }
inline uint32_t micros() { return static_cast<uint32_t>(stub_millis * 1000UL); }
inline int digitalRead(uint8_t) { return 0; }
inline void pinMode(uint8_t, uint8_t) {}
inline int digitalPinToInterrupt(uint8_t pin) { return pin - 2; }
inline void attachInterrupt(int, void (*)(), int) {}
inline void noInterrupts() {}
inline void interrupts() {}

class HardwareSerial {
 public:
  void begin(unsigned long b) { baud = b; }
  int available() { return static_cast<int>(rx.size()); }
  int read() {
    if (rx.empty()) return -1;
    int b = rx.front();
    rx.pop_front();
    return b;
  }
  size_t write(const uint8_t* data, size_t n) {
    tx.insert(tx.end(), data, data + n);
    return n;
  }
  size_t write(uint8_t b) { return write(&b, 1); }
  unsigned long baud = 0;
  std::deque<uint8_t> rx;   // bytes the "host" sent, read by the sketch
  std::vector<uint8_t> tx;  // bytes the sketch wrote
};
extern HardwareSerial Serial;
#endif
