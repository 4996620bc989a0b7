"""The virtual Arduino as its own process, like the real board beside the bridge.

    ros2 run rover_bridge virtual_arduino --link /tmp/rover_arduino
    python -m rover_bridge.twin.cli --link /tmp/rover_arduino
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from rover_bridge import protocol as p
from rover_bridge.twin.firmware_twin import FirmwareConfig
from rover_bridge.twin.pty_board import VirtualArduino


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='virtual_arduino', description='Run the rover firmware on a pseudo-terminal.')
    parser.add_argument('--link', default='/tmp/rover_arduino',
                        help='stable symlink to the pty for the bridge to open (default %(default)s)')
    parser.add_argument('--boot-delay', type=float, default=0.2,
                        help='seconds between the port opening and HELLO (bootloader)')
    parser.add_argument('--no-reset-on-open', action='store_true',
                        help='do not reboot when the host opens the port (the host must send HELLO_REQUEST)')
    parser.add_argument('--watchdog-ms', type=int, default=FirmwareConfig.watchdog_ms)
    parser.add_argument('--arming-ms', type=int, default=FirmwareConfig.arming_ms)
    parser.add_argument('--telemetry-ms', type=int, default=FirmwareConfig.telemetry_period_ms)
    parser.add_argument('--protocol-major', type=int, default=p.PROTOCOL_VERSION_MAJOR,
                        help='announce another protocol version (to test the bridge refusing it)')
    parser.add_argument('--status-period', type=float, default=1.0,
                        help='seconds between status lines on stdout (0 = quiet)')
    args = parser.parse_args(argv)
    try:
        config = FirmwareConfig(watchdog_ms=args.watchdog_ms, arming_ms=args.arming_ms,
                                telemetry_period_ms=args.telemetry_ms)
        arduino = VirtualArduino(link=args.link, config=config, boot_delay=args.boot_delay,
                                 reset_on_open=not args.no_reset_on_open,
                                 version=(args.protocol_major, p.PROTOCOL_VERSION_MINOR)).start()
    except (ValueError, OSError) as exc:
        print(f'virtual_arduino: cannot start: {exc}', file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f'virtual arduino: {arduino.port} -> {arduino.device}', flush=True)
    try:
        while not stop.wait(args.status_period if args.status_period > 0 else 3600):
            a, c = arduino.applied(), arduino.counters()
            print(f'mode={a.mode.name} steering={a.steering:+.3f} throttle={a.throttle:+.3f} '
                  f'commands={c.get("commands_rx", 0)} crc_errors={c["crc_errors"]} '
                  f'watchdog_trips={c["watchdog_trips"]}', flush=True)
    finally:
        arduino.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
