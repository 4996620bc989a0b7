"""rover_quantize installs on its own with pip (a training PC has no ROS), and colcon still
builds it as an ament_python package and tests it with pytest."""
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
RUNTIME = {'rover_common', 'numpy', 'opencv-python-headless', 'matplotlib', 'onnx', 'onnxruntime', 'onnxscript', 'rosbags',
           'safetensors', 'torch', 'tqdm'}


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    pytest.importorskip('setuptools', reason='building the wheel needs setuptools')
    tmp = tmp_path_factory.mktemp('wheel')
    source = shutil.copytree(PACKAGE, tmp / 'src', ignore=shutil.ignore_patterns('build', '*.egg-info',
                                                                                 '__pycache__'))
    out = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                          '--no-index', '-w', str(tmp / 'dist'), str(source)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return zipfile.ZipFile(next((tmp / 'dist').glob('rover_quantize-*.whl')))


def _read(wheel, suffix):
    return wheel.read(next(n for n in wheel.namelist() if n.endswith(suffix))).decode()


def test_pip_gives_the_console_script_on_path(wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_read(wheel, '.dist-info/entry_points.txt'))
    assert entry_points['console_scripts']['rover-quantize'] == 'rover_quantize.cli:main'
    # pip writes console scripts to bin/; nothing in the wheel may land in lib/rover_quantize instead
    assert not [n for n in wheel.namelist() if '.data/scripts/' in n]


def test_every_run_time_dependency_is_declared(wheel):
    metadata = _read(wheel, '.dist-info/METADATA').splitlines()
    requires = {line.split(':', 1)[1].split(';')[0].strip() for line in metadata if line.startswith('Requires-Dist:')}
    names = {r.split('>')[0].split('<')[0].split('=')[0].split('[')[0].strip() for r in requires
             if 'extra ==' not in r}
    assert RUNTIME <= names, RUNTIME - names
    extras = [line for line in metadata if line.startswith('Requires-Dist:') and 'extra == "test"' in line]
    assert {e.split(':', 1)[1].split(';')[0].strip() for e in extras} >= {'pytest', 'pytest-timeout'}


def test_colcon_keeps_the_ros_layout():
    cfg = configparser.ConfigParser()
    cfg.read(PACKAGE / 'setup.cfg')
    assert cfg['install']['install_scripts'] == '$base/lib/rover_quantize'  # for `ros2 run`
    assert (PACKAGE / 'resource' / 'rover_quantize').is_file()
    assert '<build_type>ament_python</build_type>' in (PACKAGE / 'package.xml').read_text()
