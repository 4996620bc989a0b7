"""Benchmark the serial link over a pty: round-trip time and command send rate.

Starts the virtual Arduino as its own process (like the real board, it is not in
the bridge's process), connects the bridge's SerialLink to it, sends COMMANDs at
30 Hz and PINGs at 100 Hz for a while, then prints one line:

    bench serial: rtt_p50_ms=... rtt_p99_ms=... send_rate_hz=... send_interval_p99_ms=... ...

Run: python -m rover_bridge.bench [--seconds 10]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from rover_bridge.link import LinkConfig, LinkState, SerialLink
from rover_common.process import wait_for


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='rover_bridge.bench', description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='measurement time (default %(default)s)')
    parser.add_argument('--rate-hz', type=float, default=30.0, help='COMMAND rate (default %(default)s)')
    parser.add_argument('--ping-hz', type=float, default=100.0, help='PING rate (default %(default)s)')
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix='rover_bench_serial_')
    link_path = os.path.join(workdir, 'arduino')
    board = subprocess.Popen(
        [sys.executable, '-m', 'rover_bridge.twin.cli', '--link', link_path, '--status-period', '0',
         '--arming-ms', '0', '--boot-delay', '0.05'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    link = None
    try:
        if not wait_for(lambda: os.path.islink(link_path) or board.poll() is not None, 20.0) or board.poll():
            print(f'bench serial: error=virtual_arduino_failed {board.stderr.read().strip()!r}', flush=True)
            return 1
        samples = int((args.seconds + 5) * args.ping_hz) + 100
        link = SerialLink(LinkConfig(port=link_path, rate_hz=args.rate_hz, ping_period=1.0 / args.ping_hz,
                                     stats_window=samples),
                          command_source=lambda: (0.1, 0.1, 'command')).start()
        if not wait_for(lambda: link.state == LinkState.UP, 10.0):
            print(f'bench serial: error=link_not_up last_error={link.last_error!r}', flush=True)
            return 1
        time.sleep(0.5)  # settle
        start_sent = len(link.send_times)
        start = time.monotonic()
        time.sleep(args.seconds)
        end = time.monotonic()
        send_times = np.array([t for t in link.send_times if start <= t < end])
        rtt = np.array([ms for t, ms in list(link.rtt_log) if start <= t < end])
        stats = link.stats()
        intervals_ms = np.diff(send_times) * 1000.0
        print('bench serial: '
              f'rtt_p50_ms={np.percentile(rtt, 50):.3f} rtt_p99_ms={np.percentile(rtt, 99):.3f} '
              f'send_rate_hz={len(send_times) / (end - start):.2f} '
              f'send_interval_p99_ms={np.percentile(intervals_ms, 99):.2f} '
              f'send_interval_max_ms={intervals_ms.max():.2f} '
              f'pings={len(rtt)} commands={len(link.send_times) - start_sent} seconds={end - start:.1f} '
              f'rx_crc_errors={stats["rx_crc_errors"]} rx_frame_errors={stats["rx_frame_errors"]} '
              f'reconnects={stats["reconnects"]}', flush=True)
        return 0
    finally:
        if link is not None:
            link.stop()
        if board.poll() is None:
            board.send_signal(signal.SIGINT)
            try:
                board.wait(timeout=5)
            except subprocess.TimeoutExpired:
                board.kill()
                board.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
