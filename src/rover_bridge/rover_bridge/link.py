"""The serial link to the Arduino on its own thread (pyserial, no ROS).

One thread owns the port: it opens it (with backoff while it is missing), waits for
the firmware's HELLO (the board resets when the port opens) and checks the protocol
version, sends the e-stop state, then sends COMMAND from `command_source()` at a
fixed rate phase-locked to the publisher (`pacing.SendPacer` decides when), PINGs
for the round-trip time, and decodes TELEMETRY. Every HELLO (a connect, or a
board that reset and forgot its latch) is answered with ESTOP before any COMMAND,
and while the latch is engaged every COMMAND is neutral whatever
`command_source()` says. Partial reads, garbage, unplugging and re-enumeration
are handled here; callers never block on the port.
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import os
import select
import threading
import time

import serial

from rover_bridge import protocol as p
from rover_bridge.pacing import SendPacer
from rover_common.backoff import Backoff
from rover_common.stats import RateMeter, RollingStats


class LinkState(str, enum.Enum):
    DOWN = 'down'                  # no port open (missing, failed, backing off)
    CONNECTING = 'connecting'      # port open, waiting for HELLO
    UP = 'up'                      # handshake done, commands flowing
    INCOMPATIBLE = 'incompatible'  # firmware speaks another protocol version: refused


@dataclasses.dataclass
class LinkConfig:
    port: str
    baud: int = 115200
    rate_hz: float = 30.0
    # phase lock to the publisher: see rover_bridge.pacing
    sync_margin: float = 0.001
    sync_window: float = 0.005
    hello_timeout: float = 5.0         # s after opening without HELLO -> close and retry
    hello_request_after: float = 1.5   # s of silence before asking (lets a bootloader finish)
    hello_request_period: float = 0.5
    link_timeout: float = 1.0          # s without any valid frame while up -> reconnect
    backoff_min: float = 0.1
    backoff_max: float = 1.0
    incompatible_retry: float = 5.0    # s between checks of a refused firmware (port left free for flashing)
    ping_period: float = 0.5
    estop_repeat: float = 1.0          # re-send ESTOP(1) this often while engaged
    write_timeout: float = 0.5         # s the port may refuse output before the link counts as broken
    stats_window: int = 300

    def __post_init__(self):
        if not self.port:
            raise ValueError('port is empty: set it to the Arduino, e.g. /dev/serial/by-id/usb-Arduino...')
        for name in ('rate_hz', 'hello_timeout', 'link_timeout', 'backoff_min', 'backoff_max',
                     'ping_period', 'estop_repeat', 'write_timeout', 'hello_request_period'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if self.backoff_max < self.backoff_min:
            raise ValueError('backoff_max must be >= backoff_min')


class SerialLink:
    """Owns the port on a background thread. All public methods are thread-safe and non-blocking."""

    def __init__(self, config: LinkConfig, command_source, neutral_source=None, on_telemetry=None,
                 on_log=None, clock=time.monotonic, estop: bool = False):
        self.config = config
        self._command_source = command_source        # () -> (steering, throttle, reason), wire values
        self._neutral_source = neutral_source or (lambda: (0.0, 0.0))
        self._on_telemetry = on_telemetry            # (Telemetry, receive time) from the link thread
        self._log_callback = on_log or (lambda level, text: None)
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = None
        self._ser = None
        self._decoder = p.StreamDecoder()
        self._tx_seq = 0
        self._tx_buffer = bytearray()   # bytes the port did not take yet (it is non-blocking)
        self._tx_stalled_since = None
        self._state = LinkState.DOWN
        self._backoff = Backoff(initial=config.backoff_min, maximum=config.backoff_max)
        self._next_attempt = 0.0
        self._opened_at = 0.0
        self._next_hello_request = 0.0
        self._last_rx = 0.0
        self._pacer = SendPacer(config.rate_hz, config.sync_margin, config.sync_window)
        self._next_ping = 0.0
        self._next_estop = 0.0
        self._estop = bool(estop)  # e.g. restored from the bridge's state file
        self._estop_dirty = False
        self._fresh_command = False
        self._pings = collections.OrderedDict()
        self._ping_token = 0
        self._last_rx_seq = None
        self._last_problem = ('', 0.0)
        # statistics (read through stats())
        self.hello = None
        self.last_telemetry = None
        self.last_telemetry_time = None
        self.command_rate = RateMeter(window=max(2, int(config.rate_hz * 5)))
        self.telemetry_rate = RateMeter(window=250)
        self.rtt_ms = RollingStats(window=config.stats_window)
        self.rtt_log = collections.deque(maxlen=config.stats_window)  # (receive time, rtt ms)
        self.send_times = collections.deque(maxlen=config.stats_window)
        self.send_intervals_ms = RollingStats(window=config.stats_window)
        self.counts = collections.Counter()
        self.last_error = ''

    # ---- public API ----
    def start(self) -> 'SerialLink':
        self._thread = threading.Thread(target=self._run, name='serial_link', daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the thread to send neutral and close the port, without waiting for it."""
        self._stop.set()
        self._wake()

    def stop(self, timeout: float = 2.0) -> None:
        """Send neutral (if up), close the port, end the thread."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # still closing the port; leave its wake-up pipe alone
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def command_updated(self) -> None:
        """A new command is available: send it without waiting for the next period."""
        with self._lock:
            self._fresh_command = True
        self._wake()

    def set_estop(self, engaged: bool) -> None:
        with self._lock:
            self._estop = bool(engaged)
            self._estop_dirty = True
        self._wake()

    @property
    def state(self) -> LinkState:
        return self._state

    def stats(self) -> dict:
        with self._lock:
            return {
                'state': self._state.value,
                'port': self.config.port,
                'firmware': (f'{self.hello.version_major}.{self.hello.version_minor}' if self.hello else ''),
                'commands_sent': self.counts['commands_sent'],
                'command_rate_hz': self.command_rate.rate_hz(),
                'send_interval_p99_ms': self.send_intervals_ms.percentile(99),
                'send_interval_max_ms': self.send_intervals_ms.percentile(100),
                'telemetry_rate_hz': self.telemetry_rate.rate_hz(),
                'rtt_p50_ms': self.rtt_ms.percentile(50),
                'rtt_p99_ms': self.rtt_ms.percentile(99),
                'rx_crc_errors': self._decoder.crc_errors,
                'rx_frame_errors': self._decoder.frame_errors,
                'rx_range_errors': self._decoder.range_errors,
                'rx_seq_gaps': self.counts['rx_seq_gaps'],
                'unexpected_frames': self.counts['unexpected_frames'],
                'connects': self.counts['connects'],
                'reconnects': max(0, self.counts['connects'] - 1),
                'arduino_resets': self.counts['arduino_resets'],
                'open_failures': self.counts['open_failures'],
                'link_losses': self.counts['link_losses'],
                'last_error': self.last_error,
                'estop': self._estop,
                'telemetry': self.last_telemetry,
                'telemetry_age': (self._clock() - self.last_telemetry_time
                                  if self.last_telemetry_time is not None else float('inf')),
            }

    # ---- thread ----
    def _on_log(self, level: str, text: str) -> None:
        try:
            self._log_callback(level, text)
        except Exception as exc:  # a logging problem must never stop the link
            print(f'serial link: could not log {text!r}: {exc!r}', flush=True)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b'x')
        except (BlockingIOError, OSError):
            pass  # already pending, or stopping

    def _log_problem(self, text: str) -> None:
        """Warn once per distinct problem, then at most every 10 s (a missing port retries often)."""
        now = self._clock()
        last_text, last_time = self._last_problem
        if text != last_text or now - last_time > 10.0:
            self._on_log('warn', text)
            self._last_problem = (text, now)
        self.last_error = text

    def _set_state(self, state: LinkState) -> None:
        with self._lock:
            self._state = state

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = self._clock()
                if self._ser is None:
                    if now >= self._next_attempt:
                        self._open(now)
                    else:
                        self._wait(self._next_attempt - now)
                    continue
                try:
                    readable, writable = self._wait(self._next_deadline(now) - now, self._ser.fileno(),
                                                    want_write=bool(self._tx_buffer))
                    if writable:
                        self._flush_tx()
                    if readable:
                        self._read()
                    if self._ser is not None:
                        self._periodic(self._clock())
                except (serial.SerialException, OSError) as exc:
                    self._drop(f'serial error on {self.config.port}: {exc}')
        finally:
            self._shutdown()

    def _wait(self, timeout: float, fd: int | None = None, want_write: bool = False) -> tuple[bool, bool]:
        """Sleep until timeout, a wake-up, or fd ready; returns (readable, writable)."""
        fds = [self._wake_r] + ([fd] if fd is not None else [])
        wfds = [fd] if want_write else []
        ready, ready_w, _ = select.select(fds, wfds, [], max(0.0, min(timeout, 0.5)))
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 64)
            except BlockingIOError:
                pass
        return fd is not None and fd in ready, bool(ready_w)

    def _next_deadline(self, now: float) -> float:
        if self._state == LinkState.CONNECTING:
            return min(self._opened_at + self.config.hello_timeout, max(self._next_hello_request, now))
        deadlines = [self._pacer.deadline(now, self._fresh_command), self._next_ping,
                     self._last_rx + self.config.link_timeout]
        if self._estop_dirty:
            return now
        if self._estop:
            deadlines.append(self._next_estop)
        return min(deadlines)

    def _open(self, now: float) -> None:
        cfg = self.config
        try:
            ser = serial.Serial(cfg.port, cfg.baud, timeout=0, exclusive=True)  # pyserial opens O_NONBLOCK
        except (serial.SerialException, OSError, ValueError) as exc:
            self.counts['open_failures'] += 1
            self._log_problem(f'cannot open {cfg.port}: {exc}')
            self._schedule_retry(now)
            return
        ser.reset_input_buffer()  # stale bytes from before the reset
        self._ser = ser
        self._tx_buffer.clear()
        self._tx_stalled_since = None
        self._decoder.reset()
        self._last_rx_seq = None
        self._opened_at = now
        self._next_hello_request = now + cfg.hello_request_after
        self._set_state(LinkState.CONNECTING)
        self._on_log('info', f'opened {cfg.port} at {cfg.baud} baud, waiting for the firmware HELLO')

    def _schedule_retry(self, now: float, delay: float | None = None) -> None:
        self._next_attempt = now + (self._backoff.next_delay() if delay is None else delay)

    def _close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except (serial.SerialException, OSError):
                pass
            self._ser = None

    def _drop(self, reason: str, retry_after: float | None = None) -> None:
        was_up = self._state == LinkState.UP
        self._close()
        if was_up:
            self.counts['link_losses'] += 1
        self._set_state(LinkState.DOWN)
        self._log_problem(reason)
        self._schedule_retry(self._clock(), retry_after)

    def _send(self, message) -> None:
        frame = p.encode(message, self._tx_seq)
        self._tx_seq = (self._tx_seq + 1) & 0xFF
        self._tx_buffer += frame
        self._flush_tx()

    def _flush_tx(self) -> None:
        """Write what the port takes without blocking; a port that stops taking bytes is a fault.

        (pyserial's own write timeout also fires when this thread merely waited for the
        GIL, e.g. while the executor digests a flood of messages, so it is not used.)
        """
        fd = self._ser.fileno()
        while self._tx_buffer:
            try:
                written = os.write(fd, self._tx_buffer)
            except (BlockingIOError, InterruptedError):
                break
            del self._tx_buffer[:written]
        if not self._tx_buffer:
            self._tx_stalled_since = None
            return
        now = self._clock()
        if self._tx_stalled_since is None:
            self._tx_stalled_since = now
        elif now - self._tx_stalled_since > self.config.write_timeout:
            raise serial.SerialException(
                f'output stalled for {now - self._tx_stalled_since:.2f} s ({len(self._tx_buffer)} bytes pending)')

    def _read(self) -> None:
        try:
            data = os.read(self._ser.fileno(), 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # readable but empty: the device went away
            raise serial.SerialException('device disconnected (read returned no data)')
        now = self._clock()
        for seq, message in self._decoder.feed(data):
            self._last_rx = now
            if self._last_rx_seq is not None and not isinstance(message, p.Hello):  # HELLO: seq restarts
                self.counts['rx_seq_gaps'] += p.seq_gap(self._last_rx_seq, seq)
            self._last_rx_seq = seq
            if isinstance(message, p.Telemetry):
                self._handle_telemetry(seq, message, now)
            elif isinstance(message, p.Pong):
                sent = self._pings.pop(message.token, None)
                if sent is not None:
                    self.rtt_ms.add((now - sent) * 1000.0)
                    self.rtt_log.append((now, (now - sent) * 1000.0))
            elif isinstance(message, p.Hello):
                self._handle_hello(message, now)
                if self._ser is None:
                    return  # refused
            else:
                self.counts['unexpected_frames'] += 1

    def _handle_hello(self, hello: p.Hello, now: float) -> None:
        if hello.version_major != p.PROTOCOL_VERSION_MAJOR:
            text = (f'incompatible firmware on {self.config.port}: it speaks protocol '
                    f'{hello.version_major}.{hello.version_minor}, this bridge speaks '
                    f'{p.PROTOCOL_VERSION_MAJOR}.x; flash src/rover_bridge/firmware/rover_firmware. '
                    f'Commands refused; checking again every {self.config.incompatible_retry:g} s')
            with self._lock:
                self.hello = hello
            self._close()
            self._set_state(LinkState.INCOMPATIBLE)
            self.last_error = text
            self._on_log('error', text)
            self._next_attempt = now + self.config.incompatible_retry
            return
        with self._lock:
            self.hello = hello
        if self._state == LinkState.UP:
            self.counts['arduino_resets'] += 1
            self._log_problem('the Arduino reset (HELLO while connected): power brown-out or watchdog?')
        else:
            self.counts['connects'] += 1
            self._backoff.reset()
            self._pacer.restart(now)
            self._next_ping = now
            self._set_state(LinkState.UP)
            self._on_log('info', f'link up on {self.config.port}: firmware protocol '
                                 f'{hello.version_major}.{hello.version_minor}, watchdog {hello.watchdog_ms} ms')
        # The board just (re)booted or we just connected: tell it the latch before any COMMAND
        # (a reset board forgot it; one that did not reset may hold a stale one).
        self._estop_dirty = True

    def _handle_telemetry(self, seq: int, telemetry: p.Telemetry, now: float) -> None:
        if self._state != LinkState.UP:
            if self._state == LinkState.CONNECTING and now < self._next_hello_request:
                # The firmware runs (no bootloader in the way) but sent no HELLO: ask now.
                self._next_hello_request = now
            return
        with self._lock:
            self.last_telemetry = telemetry
            self.last_telemetry_time = now
        self.telemetry_rate.tick(now)
        if self._on_telemetry is not None:
            try:
                self._on_telemetry(telemetry, now)
            except Exception as exc:  # e.g. publishing during shutdown: keep the link alive
                self._log_problem(f'telemetry callback failed: {exc!r}')

    def _periodic(self, now: float) -> None:
        cfg = self.config
        if self._ser is None:
            return
        if self._state == LinkState.CONNECTING:
            if now - self._opened_at >= cfg.hello_timeout:
                self._drop(f'no HELLO from {cfg.port} within {cfg.hello_timeout:g} s: is the rover firmware '
                           f'flashed and the baud rate {cfg.baud}?')
            elif now >= self._next_hello_request:
                self._send(p.HelloRequest())
                self.counts['hello_requests'] += 1
                self._next_hello_request = now + cfg.hello_request_period
            return
        if now - self._last_rx > cfg.link_timeout:
            self._drop(f'no data from the Arduino on {cfg.port} for {cfg.link_timeout:g} s: reconnecting',
                       retry_after=cfg.backoff_min)
            return
        if self._estop_dirty or (self._estop and now >= self._next_estop):
            with self._lock:
                engaged = self._estop
                self._estop_dirty = False
            self._send(p.Estop(int(engaged)))
            self.counts['estops_sent'] += 1
            self._next_estop = now + cfg.estop_repeat
        fresh = self._pacer.fresh_due(now, self._fresh_command)
        if fresh or self._pacer.repeat_due(now):
            with self._lock:
                self._fresh_command = False
            try:
                steering, throttle, _reason = self._command_source()
                if self._estop:  # belt and braces: the latch wins over any command source
                    steering, throttle = self._neutral_source()
            except Exception as exc:  # a bug upstream must not stop the link: send neutral
                steering, throttle = self._neutral_source()
                self._log_problem(f'command source failed, sending neutral: {exc!r}')
            self._send(p.Command(p.to_fixed(steering), p.to_fixed(throttle)))
            self.counts['commands_sent'] += 1
            self.command_rate.tick(now)
            if self.send_times:
                self.send_intervals_ms.add((now - self.send_times[-1]) * 1000.0)
            self.send_times.append(now)
            self._pacer.sent(now, fresh)
        if now >= self._next_ping:
            self._ping_token = (self._ping_token + 1) & 0xFFFFFFFF
            self._pings[self._ping_token] = now
            while len(self._pings) > 32:  # lost PONGs must not pile up
                self._pings.popitem(last=False)
            self._send(p.Ping(self._ping_token))
            self._next_ping = now + cfg.ping_period

    def _shutdown(self) -> None:
        """Last words: neutral, so the car stops now rather than at the firmware watchdog."""
        if self._ser is not None and self._state == LinkState.UP:
            try:
                steering, throttle = self._neutral_source()
                self._send(p.Command(p.to_fixed(steering), p.to_fixed(throttle)))
                self.counts['commands_sent'] += 1
                deadline = self._clock() + 0.2
                while self._tx_buffer and self._clock() < deadline:
                    select.select([], [self._ser.fileno()], [], 0.02)
                    self._flush_tx()
                self._ser.flush()  # tcdrain: the bytes are on the wire before we close
                self._on_log('info', f'sent neutral to {self.config.port} before closing')
            except (serial.SerialException, OSError) as exc:
                self._on_log('warn', f'could not send neutral before closing: {exc}')
        self._close()
        self._set_state(LinkState.DOWN)
