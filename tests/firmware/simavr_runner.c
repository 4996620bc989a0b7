// The rover firmware (.elf) on an emulated ATmega328P at 16 MHz, UART0 on a pseudo-terminal.
//
//   simavr_runner FIRMWARE.elf --link PATH [--no-reset-on-open] [--boot-ms MS] [--realtime-factor F]
//
// - UART0 is the master end of a pty; PATH is a symlink to its slave (what the bridge opens),
//   owned through an flock on PATH.lock like the Python twin's (rover_bridge/twin/link_lock.py) (a live link of
//   another instance is refused, a dead one's is replaced).
// - The pty is polled from the simulation loop (every 0.25 ms of simulated time), not from a
//   thread: a starved reader thread delays bytes in simulated time and trips the watchdog.
// - Opening the port resets the MCU, like the DTR auto-reset of an Uno/Nano. The bootloader
//   then waits --boot-ms (default 200, as the Python twin's boot_delay; optiboot waits about
//   1000) before the sketch starts: no pulses, no output, and what the host sends meanwhile
//   is swallowed. That wait is also what lets a host finish opening the port (pyserial
//   flushes its input right after open()) before the sketch's HELLO arrives.
// - Pulse widths on pins 9 and 10 (PB1, PB2) are logged when they change (by more than the
//   +-2 cycles an edge may be seen late: the output itself moves in 0.5 us = 8 cycle steps), level changes of any
//   other pin the firmware drives too, each with simulated and wall time:
//     pulse pin=9 us=1500.0 sim_ms=20.001 wall_ms=20.3
//     pin name=PB5 value=1 sim_ms=... wall_ms=...
//     rx bytes=8 sim_ms=... wall_ms=...        (bytes handed to the UART)
//     open|close|reset sim_ms=... wall_ms=...
// - simavr 1.6 (Debian 12) does not apply an OCR1x write in fast PWM mode until Timer1 is
//   reconfigured; the hardware latches OCR1x at BOTTOM (double buffering). So at every BOTTOM
//   (rising edge on pin 9) where OCR1A/OCR1B differ from what the timer runs with, the runner
//   restarts Timer1's clock, which makes simavr reload them: the same moment the chip does.
// - Paced to real time (or F times real time); it never runs ahead of the wall clock, and when
//   the machine is too slow simulated time simply falls behind: time-based checks must use sim_ms.
// - SIGINT/SIGTERM: removes the link, prints "exit sim_ms=... wall_ms=..." and returns 0.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <simavr/avr_ioport.h>
#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_irq.h>

#define F_CPU 16000000UL
#define POLL_CYCLES (F_CPU / 4000)  // 0.25 ms of simulated time between pty polls
#define IN_QUEUE 4096
#define OUT_QUEUE 4096

static volatile sig_atomic_t stop_requested = 0;
static avr_t* avr;
static double wall_start;
static double realtime_factor = 1.0;
static int reset_on_open = 1;
static double boot_ms = 200.0;

static int master = -1;
static int peer_open = 0;
static int uart_xon = 0;
static uint8_t in_queue[IN_QUEUE];
static size_t in_head = 0, in_len = 0;
static uint8_t out_queue[OUT_QUEUE];
static size_t out_len = 0;
static unsigned long tx_dropped = 0;

// ATmega328P Timer1 registers (data space addresses).
#define TCCR1B_ADDR 0x81
#define OCR1AL_ADDR 0x88
#define OCR1BL_ADDR 0x8A
static uint32_t timer_ocr = 0xFFFFFFFF;  // OCR1A | OCR1B << 16 that Timer1 was last (re)started with
static int bottom_seen = 0;              // a frame started (pin 9 rose) since the last check

struct pin_state {
  char name[4];
  int arduino_pin;         // 9 / 10 for the PWM outputs, else -1
  avr_cycle_count_t rise;  // cycle of the last rising edge, 0 = none yet
  long last_ticks;         // last logged pulse width in 1/16 us, -1 = none
};
static struct pin_state pins[3][8];

static double wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (ts.tv_sec + ts.tv_nsec * 1e-9 - wall_start) * 1000.0;
}

static double sim_ms(void) { return avr->cycle * 1000.0 / F_CPU; }

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void log_event(const char* what) {
  printf("%s sim_ms=%.3f wall_ms=%.1f\n", what, sim_ms(), wall_ms());
}

static void on_uart_output(struct avr_irq_t* irq, uint32_t value, void* param) {
  (void)irq;
  (void)param;
  if (!peer_open) return;  // nobody has the port open: the bytes are lost, as on USB
  if (out_len < OUT_QUEUE)
    out_queue[out_len++] = (uint8_t)value;
  else
    ++tx_dropped;
}

static void on_xon(struct avr_irq_t* irq, uint32_t value, void* param) {
  (void)irq;
  (void)value;
  (void)param;
  uart_xon = 1;
}

static void on_xoff(struct avr_irq_t* irq, uint32_t value, void* param) {
  (void)irq;
  (void)value;
  (void)param;
  uart_xon = 0;
}

static void on_pin(struct avr_irq_t* irq, uint32_t value, void* param) {
  (void)irq;
  struct pin_state* p = param;
  if (p->arduino_pin < 0) {
    printf("pin name=%s value=%u sim_ms=%.3f wall_ms=%.1f\n", p->name, value & 1, sim_ms(), wall_ms());
    return;
  }
  if (value & 1) {
    p->rise = avr->cycle;
    if (p->arduino_pin == 9) bottom_seen = 1;
  } else if (p->rise) {
    long ticks = (long)(avr->cycle - p->rise);
    // Edges are seen at instruction boundaries (+-2 cycles); a change of the output is >= 8 cycles.
    if (p->last_ticks < 0 || labs(ticks - p->last_ticks) > 2) {
      p->last_ticks = ticks;
      printf("pulse pin=%d us=%.1f sim_ms=%.3f wall_ms=%.1f\n", p->arduino_pin, ticks / 16.0, sim_ms(),
             wall_ms());
    }
  }
}

static void watch_pins(void) {
  const char ports[3] = {'B', 'C', 'D'};
  for (int port = 0; port < 3; ++port) {
    for (int bit = 0; bit < 8; ++bit) {
      struct pin_state* p = &pins[port][bit];
      snprintf(p->name, sizeof(p->name), "P%c%d", ports[port], bit);
      p->arduino_pin = (port == 0 && bit == 1) ? 9 : (port == 0 && bit == 2) ? 10 : -1;
      p->last_ticks = -1;
      if (port == 2 && bit < 2) continue;  // PD0/PD1 are the UART itself
      avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(ports[port]), bit), on_pin, p);
    }
  }
}

static uint16_t data16(uint16_t addr) { return (uint16_t)(avr->data[addr] | (avr->data[addr + 1] << 8)); }

static void io_write(uint16_t addr, uint8_t value) {
  avr_io_addr_t io = AVR_DATA_TO_IO(addr);
  avr->io[io].w.c(avr, addr, value, avr->io[io].w.param);
}

// Called right after the instruction during which a frame started: latch new OCR1x values.
static void latch_ocr_at_bottom(void) {
  bottom_seen = 0;
  uint32_t ocr = data16(OCR1AL_ADDR) | ((uint32_t)data16(OCR1BL_ADDR) << 16);
  if (ocr == timer_ocr) return;
  timer_ocr = ocr;
  uint8_t tccr1b = avr->data[TCCR1B_ADDR];
  io_write(TCCR1B_ADDR, tccr1b & (uint8_t)~0x07);  // clock off...
  io_write(TCCR1B_ADDR, tccr1b);                   // ...and on: a new frame from now with the new OCR1x
}

static void reset_pulses(void) {
  timer_ocr = 0xFFFFFFFF;
  for (int port = 0; port < 3; ++port)
    for (int bit = 0; bit < 8; ++bit) pins[port][bit].rise = 0;
}

// The bootloader's wait after a reset: the sketch does not run (simulated time skips the wait,
// wall time sleeps through it, so the pacing stays as it was) and the host's bytes are dropped.
static void bootloader_wait(void) {
  if (boot_ms <= 0) return;
  double wall = boot_ms / realtime_factor;
  struct timespec ts = {(time_t)(wall / 1000), (long)((wall - 1000 * (time_t)(wall / 1000)) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
  }
  avr->cycle += (avr_cycle_count_t)(boot_ms * (F_CPU / 1000));
  uint8_t buf[512];
  while (read(master, buf, sizeof(buf)) > 0) {
  }
  in_len = 0;
}

// The slave end is closed by us, so POLLHUP on the master means "nobody has the port open".
static void poll_pty(avr_irq_t* uart_in) {
  struct pollfd pfd = {master, POLLIN, 0};
  if (poll(&pfd, 1, 0) < 0) return;
  int hung_up = (pfd.revents & POLLHUP) != 0;
  if (pfd.revents & POLLIN) {
    uint8_t buf[512];
    size_t room = IN_QUEUE - in_len;
    ssize_t n = read(master, buf, room < sizeof(buf) ? room : sizeof(buf));
    for (ssize_t i = 0; i < n; ++i) in_queue[(in_head + in_len++) % IN_QUEUE] = buf[i];
  }
  if (!hung_up && !peer_open) {
    peer_open = 1;
    log_event("open");
    if (reset_on_open) {
      avr_reset(avr);  // DTR auto-reset: the sketch starts over and sends HELLO
      reset_pulses();
      log_event("reset");
      bootloader_wait();
    }
  } else if (hung_up && peer_open) {
    peer_open = 0;
    out_len = 0;
    log_event("close");
  }
  size_t fed = 0;
  while (uart_xon && in_len > 0) {  // XOFF arrives synchronously when the UART fifo fills
    avr_raise_irq(uart_in, in_queue[in_head]);
    in_head = (in_head + 1) % IN_QUEUE;
    --in_len;
    ++fed;
  }
  if (fed) printf("rx bytes=%zu sim_ms=%.3f wall_ms=%.1f\n", fed, sim_ms(), wall_ms());
  if (out_len && peer_open) {
    ssize_t n = write(master, out_queue, out_len);
    if (n > 0) {
      memmove(out_queue, out_queue + n, out_len - (size_t)n);
      out_len -= (size_t)n;
    }
  }
}

static void pace(void) {
  double ahead_ms = sim_ms() / realtime_factor - wall_ms();
  if (ahead_ms > 0.5) {
    struct timespec ts = {0, (long)(ahead_ms * 1e6)};
    nanosleep(&ts, NULL);
  }
}

static int lock_link(const char* link) {
  char lock_path[4096];
  snprintf(lock_path, sizeof(lock_path), "%s.lock", link);
  int fd = open(lock_path, O_RDWR | O_CREAT, 0644);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char owner[32] = "?";
    if (fd >= 0) {
      ssize_t n = pread(fd, owner, sizeof(owner) - 1, 0);
      owner[n > 0 ? n : 0] = 0;
      owner[strcspn(owner, "\n")] = 0;
    }
    fprintf(stderr, "simavr_runner: %s is the live link of another virtual Arduino (pid %s); refusing to replace it\n",
            link, owner);
    return -1;
  }
  struct stat locked, named;
  if (fstat(fd, &locked) != 0 || stat(lock_path, &named) != 0 || locked.st_ino != named.st_ino) {
    close(fd);  // its previous owner unlinked it between our open and our lock: take the new one
    return lock_link(link);
  }
  char pid[32];
  int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) return -1;
  return fd;
}

int main(int argc, char** argv) {
  const char* elf = NULL;
  const char* link = NULL;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--link") && i + 1 < argc)
      link = argv[++i];
    else if (!strcmp(argv[i], "--realtime-factor") && i + 1 < argc)
      realtime_factor = atof(argv[++i]);
    else if (!strcmp(argv[i], "--no-reset-on-open"))
      reset_on_open = 0;
    else if (!strcmp(argv[i], "--boot-ms") && i + 1 < argc)
      boot_ms = atof(argv[++i]);
    else
      elf = argv[i];
  }
  if (!elf || !link || realtime_factor <= 0 || boot_ms < 0) {
    fprintf(stderr, "usage: %s FIRMWARE.elf --link PATH [--no-reset-on-open] [--boot-ms MS] [--realtime-factor F]\n",
            argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);

  elf_firmware_t firmware;
  memset(&firmware, 0, sizeof(firmware));
  if (elf_read_firmware(elf, &firmware) != 0) {
    fprintf(stderr, "simavr_runner: cannot read %s\n", elf);
    return 2;
  }
  strcpy(firmware.mmcu, "atmega328p");
  firmware.frequency = F_CPU;
  avr = avr_make_mcu_by_name(firmware.mmcu);
  if (!avr || avr_init(avr) != 0) {
    fprintf(stderr, "simavr_runner: no atmega328p in this simavr\n");
    return 2;
  }
  avr_load_firmware(avr, &firmware);
  avr->log = 0;

  uint32_t flags = 0;
  avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
  flags &= ~(uint32_t)(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);  // no console echo, no usleep()
  avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
  avr_irq_t* uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_output, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
  watch_pins();

  int lock_fd = lock_link(link);
  if (lock_fd < 0) return 2;
  int slave = -1;
  char device[256];
  if (openpty(&master, &slave, device, NULL, NULL) != 0) {
    perror("simavr_runner: openpty");
    return 2;
  }
  struct termios tio;
  tcgetattr(slave, &tio);
  cfmakeraw(&tio);
  tcsetattr(slave, TCSANOW, &tio);
  close(slave);  // so the host's open/close shows as POLLHUP on the master
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  struct stat st;
  if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode)) {
    fprintf(stderr, "simavr_runner: %s exists and is not a symlink; refusing to replace it\n", link);
    return 2;
  }
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp%d", link, (int)getpid());
  unlink(tmp);
  if (symlink(device, tmp) != 0 || rename(tmp, link) != 0) {
    perror("simavr_runner: link");
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  wall_start = ts.tv_sec + ts.tv_nsec * 1e-9;
  printf("ready link=%s device=%s mcu=atmega328p f_cpu=%lu\n", link, device, F_CPU);

  int state = cpu_Running;
  avr_cycle_count_t next_poll = 0;
  while (!stop_requested && state != cpu_Done && state != cpu_Crashed) {
    state = avr_run(avr);
    if (bottom_seen) latch_ocr_at_bottom();
    if (avr->cycle >= next_poll) {
      next_poll = avr->cycle + POLL_CYCLES;
      poll_pty(uart_in);
      pace();
    }
  }
  unlink(link);
  char lock_path[4096];
  snprintf(lock_path, sizeof(lock_path), "%s.lock", link);
  unlink(lock_path);
  close(lock_fd);
  printf("exit sim_ms=%.3f wall_ms=%.1f tx_dropped=%lu state=%d\n", sim_ms(), wall_ms(), tx_dropped, state);
  return (state == cpu_Crashed) ? 1 : 0;
}
