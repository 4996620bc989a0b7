"""Build and run the firmware's C++ code on this machine with g++ (for tests).

`rover_protocol.h` has no Arduino dependency, so the host compiler builds:
- `host_driver.cpp`: a line-oriented driver the tests feed vectors and timelines to;
- `sketch_test.cpp`: the real sketch against a stub Arduino core (Timer1 registers as variables).
Binaries are cached by a hash of their sources (and flags) in the temp directory.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CXXFLAGS = ['-std=c++11', '-O1', '-Wall', '-Wextra', '-Werror', '-Wconversion', '-Wno-sign-conversion']


def firmware_dir() -> Path:
    """The firmware folder: next to the package in a source tree, else share/rover_bridge."""
    here = Path(__file__).resolve().parent.parent / 'firmware'
    if here.is_dir():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('rover_bridge')) / 'firmware'
    except Exception as exc:  # pragma: no cover - only when installed without share/
        raise FileNotFoundError('cannot find the rover_bridge firmware folder') from exc


def firmware_defaults() -> dict[str, int]:
    """The compile-time defaults of rover_protocol.h (`#define ROVER_X n`), e.g. {'WATCHDOG_MS': 250}.

    The header is the one place they are written; the Python twin reads them here.
    """
    text = (firmware_dir() / 'rover_firmware' / 'rover_protocol.h').read_text()
    return {name: int(value) for name, value in re.findall(r'^#define ROVER_(\w+) (\d+)\b', text, re.M)}


def compiler() -> str | None:
    return shutil.which(os.environ.get('CXX', 'g++'))


def build(source_name: str, extra_flags: list[str] | None = None) -> Path:
    """Compile firmware/host_test/<source_name> (cached); raises RuntimeError with g++'s output."""
    cxx = compiler()
    if cxx is None:
        raise FileNotFoundError('g++ not found')
    root = firmware_dir()
    sources = sorted((root / 'rover_firmware').glob('*')) + sorted((root / 'host_test').rglob('*.*'))
    flags = CXXFLAGS + list(extra_flags or [])
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(' '.join([cxx, source_name, *flags]).encode())
    out_dir = Path(tempfile.gettempdir()) / 'rover_firmware_host' / digest.hexdigest()[:16]
    binary = out_dir / Path(source_name).stem
    if binary.exists():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(f'.tmp{os.getpid()}')
    cmd = [cxx, *flags, '-I', str(root / 'rover_firmware'), '-I', str(root / 'host_test' / 'stubs'),
           '-x', 'c++', str(root / 'host_test' / source_name), '-o', str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'g++ failed:\n{" ".join(cmd)}\n{result.stdout}{result.stderr}')
    os.replace(tmp, binary)  # atomic: parallel test runs never see half a binary
    return binary


def run_driver(lines: list[str], extra_flags: list[str] | None = None, timeout: float = 60) -> list[str]:
    """Feed command lines to host_driver and return its output lines."""
    binary = build('host_driver.cpp', extra_flags)
    result = subprocess.run([str(binary)], input='\n'.join(lines) + '\n', capture_output=True,
                            text=True, timeout=timeout, check=True)
    return result.stdout.splitlines()
