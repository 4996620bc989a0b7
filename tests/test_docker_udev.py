"""docker/99-rover.rules: the rules name the rover's devices (simulated matching) and the
configs use those names.

No Docker engine runs here: these are static checks and runs against fakes.
"""
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from test_docker_compose import compose  # noqa: F401 - the compose fixture

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / 'docker'


# ---------------------------------------------------------------- udev rules

UDEV_MATCH = {'==', '!='}
UDEV_ASSIGN = {'=', '+=', '-=', ':='}
UDEV_KEY = re.compile(r'(ACTION|DEVPATH|KERNEL|KERNELS|NAME|SYMLINK|SUBSYSTEM|SUBSYSTEMS|DRIVER|DRIVERS|'
                      r'ATTR|ATTRS|SYSCTL|ENV|CONST|TAG|TAGS|TEST|PROGRAM|RESULT|OWNER|GROUP|MODE|LABEL|'
                      r'GOTO|IMPORT|OPTIONS|RUN|SECLABEL)(\{[^}]+\})?$')
UDEV_TOKEN = re.compile(r'\s*([A-Z]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def parse_udev_rules(text: str) -> list[list[tuple[str, str, str]]]:
    rules, pending = [], ''
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith('#')):
            continue
        if line.endswith('\\'):
            pending += line[:-1] + ' '
            continue
        line, pending = pending + line, ''
        tokens, position = [], 0
        while position < len(line):
            match = UDEV_TOKEN.match(line, position)
            assert match, f'line {number}: cannot parse {line[position:]!r}'
            key, operator, value = match.group(1), match.group(2), match.group(3)
            assert UDEV_KEY.match(key), f'line {number}: unknown key {key}'
            base = key.split('{')[0]
            if base in ('SUBSYSTEM', 'SUBSYSTEMS', 'KERNEL', 'KERNELS', 'DRIVERS', 'ATTRS', 'ACTION', 'DEVPATH'):
                assert operator in UDEV_MATCH, f'line {number}: {key} only matches'
            if base in ('SYMLINK', 'GROUP', 'MODE', 'OWNER', 'RUN'):
                assert operator in UDEV_ASSIGN, f'line {number}: {key}{operator} does not assign'
            if base == 'MODE':
                assert re.fullmatch(r'0[0-7]{3}', value), f'line {number}: MODE {value}'
            tokens.append((key, operator, value))
            position = match.end()
            if match.group(4) == '':
                break
        assert position >= len(line.rstrip()), f'line {number}: trailing text'
        rules.append(tokens)
    return rules


@dataclass
class Device:
    subsystem: str
    kernel: str
    attrs: dict            # ATTR{...} of the device itself
    parents: list          # [{'KERNELS': .., 'SUBSYSTEMS': .., 'DRIVERS': .., 'ATTRS': {...}}], nearest first


def udev_apply(rules, device: Device) -> dict:
    """What the rules do to one device: its symlinks, group and mode (udev's matching, simplified)."""
    def matches(pattern, value):
        return value is not None and any(fnmatch.fnmatchcase(value, p) for p in pattern.split('|'))

    result = {'symlinks': set(), 'group': None, 'mode': None}
    for rule in rules:
        own = {'SUBSYSTEM': device.subsystem, 'KERNEL': device.kernel}
        parent_keys, ok = [], True
        for key, operator, value in rule:
            if operator not in UDEV_MATCH:
                continue
            base, _, attr = key.partition('{')
            attr = attr.rstrip('}')
            if base in ('SUBSYSTEMS', 'KERNELS', 'DRIVERS', 'ATTRS'):
                parent_keys.append((base, attr, operator, value))
                continue
            actual = device.attrs.get(attr) if base == 'ATTR' else own.get(base)
            ok &= matches(value, actual) == (operator == '==')
        if ok and parent_keys:
            # every "S" key must match on one and the same device up the chain (the device itself included)
            chain_ = [{'KERNELS': device.kernel, 'SUBSYSTEMS': device.subsystem, 'DRIVERS': None,
                       'ATTRS': device.attrs}] + device.parents
            ok = any(all(matches(value, (node['ATTRS'].get(attr) if base == 'ATTRS' else node.get(base)))
                         == (operator == '==') for base, attr, operator, value in parent_keys)
                     for node in chain_)
        if not ok:
            continue
        for key, operator, value in rule:
            if key == 'SYMLINK' and operator in ('+=', '=', ':='):
                result['symlinks'] |= set(value.split())
            elif key == 'GROUP':
                result['group'] = value
            elif key == 'MODE':
                result['mode'] = value
    return result


def usb_tty(kernel, vendor, product, driver):
    return Device('tty', kernel, {}, [
        {'KERNELS': '1-1.2:1.0', 'SUBSYSTEMS': 'usb', 'DRIVERS': driver, 'ATTRS': {}},
        {'KERNELS': '1-1.2', 'SUBSYSTEMS': 'usb', 'DRIVERS': 'usb',
         'ATTRS': {'idVendor': vendor, 'idProduct': product, 'serial': '7573530303035'}}])


def uvc_node(kernel, index):
    return Device('video4linux', kernel, {'index': str(index), 'name': 'HD USB Camera'}, [
        {'KERNELS': '3-1:1.0', 'SUBSYSTEMS': 'usb', 'DRIVERS': 'uvcvideo', 'ATTRS': {}},
        {'KERNELS': '3-1', 'SUBSYSTEMS': 'usb', 'DRIVERS': 'usb', 'ATTRS': {'idVendor': '32e4', 'idProduct': '9230'}}])


@pytest.fixture(scope='module')
def udev_rules():
    return parse_udev_rules((DOCKER / '99-rover.rules').read_text())


@pytest.mark.parametrize('device,symlink,group', [
    (usb_tty('ttyACM0', '2341', '0043', 'cdc_acm'), 'rover_arduino', 'dialout'),     # Uno R3
    (usb_tty('ttyUSB0', '1a86', '7523', 'ch341'), 'rover_arduino', 'dialout'),       # Nano clone
    (usb_tty('ttyUSB0', '0403', '6001', 'ftdi_sio'), 'rover_arduino', 'dialout'),    # FTDI
    (usb_tty('ttyUSB1', '10c4', 'ea60', 'cp210x'), None, None),                      # a GPS, say
    (Device('tty', 'ttyAMA0', {}, [{'KERNELS': '107d001000.serial', 'SUBSYSTEMS': 'amba',
                                    'DRIVERS': 'uart-pl011', 'ATTRS': {}}]), None, None),
    (uvc_node('video0', 0), 'rover_camera', 'video'),
    (uvc_node('video1', 1), None, None),                                             # UVC metadata node
    (Device('video4linux', 'video20', {'index': '0'}, [{'KERNELS': '1000880000.pisp_be', 'SUBSYSTEMS': 'platform',
                                                        'DRIVERS': 'pispbe', 'ATTRS': {}}]), None, None),
    (Device('hailo_chardev', 'hailo0', {}, [{'KERNELS': '0001:01:00.0', 'SUBSYSTEMS': 'pci',
                                              'DRIVERS': 'hailo', 'ATTRS': {}}]), None, 'video'),
])
def test_udev_rules_name_the_rover_devices_and_nothing_else(udev_rules, device, symlink, group):
    result = udev_apply(udev_rules, device)
    assert result['symlinks'] == ({symlink} if symlink else set())
    assert result['group'] == group
    if group:
        assert result['mode'] == '0660'


def test_udev_parser_rejects_malformed_lines():
    parse_udev_rules('SUBSYSTEM=="tty", SYMLINK+="x"\n')
    for bad in ('SUBSYSTEM="tty"', 'SUBSYSTEM=="tty" SYMLINK+="x"', 'FOO=="x"',
                'SUBSYSTEM=="tty", MODE="660"', 'SUBSYSTEM=="tty", SYMLINK+=x'):
        with pytest.raises(AssertionError):
            parse_udev_rules(bad + '\n')


def test_configs_use_the_udev_names(udev_rules, compose):
    created = {'/dev/' + value for rule in udev_rules for key, op, value in rule if key == 'SYMLINK'}
    assert created == {'/dev/rover_arduino', '/dev/rover_camera'}
    config = yaml.safe_load((REPO / 'config/rover.yaml').read_text())
    assert config['/**/bridge']['ros__parameters']['port'] in created
    for service in compose['services'].values():
        hosts = {d.split(':')[0] for d in service['devices']} - {'/dev/hailo0'}
        assert hosts <= created


