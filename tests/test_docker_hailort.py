"""docker/check_hailort.py (rover-check-hailort in the image): the HailoRT library must be the
version of the host's hailo_pci driver; run here against fake libraries and sysfs files.

No Docker engine runs here: these are static checks and runs against fakes.
"""
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / 'docker'


# ---------------------------------------------------------------- check_hailort.py

def run_check(tmp_path, *args, library=None, sysfs='4.20.0', env_version=None, device='/dev/null',
              module_source=None):
    fake = tmp_path / 'site'
    if library is not None or module_source is not None:
        (fake / 'hailo_platform').mkdir(parents=True, exist_ok=True)
        (fake / 'hailo_platform' / '__init__.py').write_text(
            module_source if module_source is not None else f'__version__ = "{library}"\n')
    sysfs_file = tmp_path / 'version'
    if sysfs is not None:
        sysfs_file.write_text(sysfs + '\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'HAILORT_HOST_VERSION')}
    env['PYTHONPATH'] = str(fake)
    if env_version is not None:
        env['HAILORT_HOST_VERSION'] = env_version
    return subprocess.run([sys.executable, str(DOCKER / 'check_hailort.py'), '--device', device,
                           '--sysfs-version', str(sysfs_file), *args],
                          capture_output=True, text=True, env=env, timeout=30)


def test_hailort_check_passes_when_library_matches_driver(tmp_path):
    result = run_check(tmp_path, '--print', library='4.20.0', sysfs='4.20.0')
    assert result.returncode == 0, result.stderr
    assert 'HailoRT 4.20.0' in result.stdout and 'match' in result.stdout


def test_hailort_check_refuses_a_mismatch_with_both_versions(tmp_path):
    result = run_check(tmp_path, library='4.23.0', sysfs='4.20.0')
    assert result.returncode == 78
    assert 'mismatch' in result.stderr and '4.20.0' in result.stderr and '4.23.0' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, 'one clear line, no traceback'


def test_hailort_check_uses_the_env_version_when_sysfs_is_unreadable(tmp_path):
    assert run_check(tmp_path, library='4.21.0', sysfs=None, env_version='4.21.0').returncode == 0
    result = run_check(tmp_path, library='4.21.0', sysfs=None, env_version='hailort 4.20.0-1')
    assert result.returncode == 78 and '4.20.0' in result.stderr
    result = run_check(tmp_path, library='4.21.0', sysfs=None)
    assert result.returncode == 78 and 'unknown' in result.stderr and 'modinfo' in result.stderr


def test_hailort_check_refuses_without_a_usable_device(tmp_path):
    result = run_check(tmp_path, library='4.20.0', device=str(tmp_path / 'hailo0'))
    assert result.returncode == 78 and 'does not exist' in result.stderr
    regular = tmp_path / 'not_a_device'
    regular.write_text('')
    result = run_check(tmp_path, library='4.20.0', device=str(regular))
    assert result.returncode == 78 and 'not a character device' in result.stderr


def test_hailort_check_reports_a_library_that_does_not_load(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 78 and 'does not load' in result.stderr and 'hailo_platform' in result.stderr
    result = run_check(tmp_path, module_source='raise ImportError("libhailort.so.4.20.0: cannot open shared object file")\n')
    assert result.returncode == 78 and 'libhailort.so.4.20.0' in result.stderr
    assert 'Traceback' not in result.stderr


def test_hailort_version_parsing():
    sys.path.insert(0, str(DOCKER))
    try:
        import check_hailort
    finally:
        sys.path.remove(str(DOCKER))
    assert check_hailort.parse_version('HailoRT-CLI version 4.20.0') == (4, 20, 0)
    assert check_hailort.parse_version('v4.23.0\n') == (4, 23, 0)
    assert check_hailort.parse_version('4.18.0-1') == (4, 18, 0)
    assert check_hailort.parse_version('4.20') is None


