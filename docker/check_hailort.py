#!/usr/bin/env python3
"""Refuse to start the Hailo backend unless the HailoRT library matches the host's driver.

HailoRT rejects every call when the hailo_pci driver and libhailort differ in
major.minor.revision (HAILO_INVALID_DRIVER_VERSION). The driver lives on the
host, the library in the image, so an `apt upgrade` on either side breaks the
pair; this check says so in one line at start-up instead of a failure deep in
the policy node. It reads only local files: nothing is downloaded.

    rover-check-hailort            # exit 0: match; 78: mismatch or no device
    rover-check-hailort --print    # also print both versions when they match

Where the versions come from:
  driver  /sys/module/hailo_pci/version (the loaded module; sysfs is visible in
          containers), else $HAILORT_HOST_VERSION (written into
          /etc/rover/rover.env by docker/install_host.sh from `modinfo`).
  library hailo_platform.__version__ (the Python API the policy node imports;
          it checks itself against its _pyhailort extension on import).
"""
import argparse
import os
import re
import stat
import sys

EXIT_OK = 0
EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus= can stop a restart loop
HOW_TO_FIX = ('HailoRT requires the library and the driver to be the same version. Either rebuild '
              'the image with the HailoRT .deb and cp312 wheel of the driver\'s version '
              '(docker/README.md, "Hailo variant"), or install the matching driver on the host '
              '(Raspberry Pi OS: sudo apt install hailo-all; Ubuntu: hailort-pcie-driver_<ver>_all.deb) and reboot.')


def parse_version(text: str) -> tuple | None:
    """'4.20.0', 'v4.20.0', 'HailoRT-CLI version 4.20.0', '4.20.0-1' -> (4, 20, 0)."""
    match = re.search(r'(\d+)\.(\d+)\.(\d+)', text or '')
    return tuple(int(part) for part in match.groups()) if match else None


def fmt(version: tuple) -> str:
    return '.'.join(str(part) for part in version)


def driver_version(sysfs_file: str, environ) -> tuple[tuple | None, str]:
    try:
        with open(sysfs_file, encoding='ascii') as handle:
            found = parse_version(handle.read())
        if found:
            return found, sysfs_file
    except OSError:
        pass
    from_env = environ.get('HAILORT_HOST_VERSION', '')
    found = parse_version(from_env)
    return (found, 'HAILORT_HOST_VERSION') if found else (None, '')


def library_version() -> tuple[tuple | None, str]:
    try:
        import hailo_platform
    except Exception as exc:  # ImportError, or a broken libhailort raising on load
        return None, f'{type(exc).__name__}: {exc}'
    found = parse_version(getattr(hailo_platform, '__version__', ''))
    if found:
        return found, 'hailo_platform'
    return None, 'hailo_platform has no __version__'


def check_device(device: str) -> str:
    """'' when usable, else why not."""
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        return (f'{device} does not exist: is the hailo_pci driver loaded on the host '
                f'(lsmod | grep hailo; hailortcli scan) and is the device passed to the container '
                f'(compose profile "hailo", devices: {device})?')
    except OSError as exc:
        return f'{device}: {exc}'
    if not stat.S_ISCHR(mode):
        return f'{device} is not a character device'
    if not os.access(device, os.R_OK | os.W_OK):
        return (f'{device} is not readable and writable by uid {os.getuid()} (groups {os.getgroups()}): '
                f'install docker/99-rover.rules on the host and pass its group (HAILO_GID) to the container')
    return ''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='/dev/hailo0')
    parser.add_argument('--sysfs-version', default='/sys/module/hailo_pci/version',
                        help='where the loaded driver reports its version')
    parser.add_argument('--print', action='store_true', help='print the versions when they match')
    args = parser.parse_args(argv)

    problem = check_device(args.device)
    if problem:
        print(f'rover: Hailo backend cannot start: {problem}', file=sys.stderr)
        return EXIT_CONFIG

    driver, driver_source = driver_version(args.sysfs_version, os.environ)
    if driver is None:
        print(f'rover: Hailo backend cannot start: the host driver version is unknown ({args.sysfs_version} '
              f'is unreadable and HAILORT_HOST_VERSION is not set). On the host: modinfo -F version hailo_pci',
              file=sys.stderr)
        return EXIT_CONFIG

    library, library_source = library_version()
    if library is None:
        print(f'rover: Hailo backend cannot start: the HailoRT Python API does not load ({library_source}). '
              f'{HOW_TO_FIX}', file=sys.stderr)
        return EXIT_CONFIG

    if library != driver:
        print(f'rover: HailoRT version mismatch: host driver hailo_pci {fmt(driver)} ({driver_source}), '
              f'library in this image {fmt(library)} ({library_source}). {HOW_TO_FIX}', file=sys.stderr)
        return EXIT_CONFIG

    if args.print:
        print(f'HailoRT {fmt(library)}: driver ({driver_source}) and library ({library_source}) match, '
              f'{args.device} usable')
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
