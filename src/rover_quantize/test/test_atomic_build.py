"""No working model is ever lost (issue 10): a build into an existing model directory that fails,
is refused or is interrupted (SIGINT, SIGKILL) leaves every file of the old model as it was."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rover_quantize import staging
from rover_quantize.bags import write_test_bag

from conftest import CALIB, VALID

SRC = str(Path(__file__).resolve().parents[1])


def tree_sha(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def leftovers(parent: Path) -> list:
    return sorted(p.name for p in parent.iterdir() if staging._TAG in p.name)


@pytest.fixture
def current(built, tmp_path):
    """A working model directory in use, like /opt/rover/models/current."""
    model = tmp_path / 'models' / 'current'
    shutil.copytree(built.model_dir, model)
    return model


def cli(*args, **popen):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get('PYTHONPATH', ''))
    # SIGINT back to its default in the child: a test run started in the background by a
    # non-interactive shell inherits it ignored, and Python then installs no Ctrl-C handler
    return subprocess.Popen([sys.executable, '-m', 'rover_quantize.cli', '--quiet', *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def build_args(built, out, bag):
    return ('build', built.ckpt, '-o', out, '--bag', bag, '--calibration-frames', CALIB,
            '--validation-frames', VALID, '--no-report')


def test_typo_in_bag_fails_fast_and_keeps_the_model(built, current):
    before = tree_sha(current)
    started = time.monotonic()
    proc = cli(*build_args(built, current, current.parent / 'drive1_typo'))
    out, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, err
    assert err.count('\n') == 1 and 'bag not found' in err and 'drive1_typo' in err
    assert elapsed < 30, f'bad input took {elapsed:.1f} s to fail'  # the export alone takes longer
    assert tree_sha(current) == before
    assert leftovers(current.parent) == []


def test_bad_bag_fails_before_the_export(built, current, tmp_path):
    """A truncated bag and a bag without the camera topic: exit 2, one line, model untouched."""
    before = tree_sha(current)
    truncated = shutil.copytree(built.bag, tmp_path / 'truncated')
    data = next(truncated.glob('*.mcap'))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    other = write_test_bag(tmp_path / 'other', n_frames=3, hw=(48, 64), image_topic='/front/image')
    for bag, words in ((truncated, 'cannot open bag'), (other, 'no image topic')):
        proc = cli(*build_args(built, current, bag))
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and err.count('\n') == 1 and words in err, err
        assert tree_sha(current) == before
        assert leftovers(current.parent) == []


def _interrupt_mid_build(built, current, sig):
    """Start a build, wait until it is writing its ONNX files, then send `sig`."""
    proc = cli(*build_args(built, current, built.bag))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any((stage / 'model_fp32.onnx').exists() for stage in current.parent.glob(f'.current{staging._TAG}*')):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_sigint_mid_build_keeps_the_model_and_leaves_nothing(built, current):
    before = tree_sha(current)
    code, err = _interrupt_mid_build(built, current, signal.SIGINT)
    assert code == 130 and 'interrupted' in err, err
    assert tree_sha(current) == before
    assert leftovers(current.parent) == []


def test_sigkill_mid_build_keeps_the_model_and_the_next_run_cleans_up(built, current):
    before = tree_sha(current)
    code, _ = _interrupt_mid_build(built, current, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert tree_sha(current) == before
    assert leftovers(current.parent)  # a SIGKILL leaves the staging directory behind ...
    proc = cli(*build_args(built, current, current.parent / 'typo'))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert leftovers(current.parent) == []  # ... and the next run removes it
    assert tree_sha(current) == before


def test_a_live_build_is_not_taken_for_a_dead_one(tmp_path):
    target = tmp_path / 'current'
    with staging.StagedDir(target) as live:
        (live.path / 'a').write_text('new')
        assert staging.StagedDir(target).removed_stale == []  # another build starting now
        assert (live.path / 'a').exists()
        live.commit()
    assert (target / 'a').read_text() == 'new' and leftovers(tmp_path) == []


def test_commit_swaps_the_whole_directory_and_follows_a_symlink(tmp_path):
    real = tmp_path / 'v1'
    real.mkdir()
    (real / 'manifest.json').write_text('{}')
    (real / 'old_only').write_text('x')
    link = tmp_path / 'current'
    link.symlink_to(real)
    with staging.StagedDir(link) as stage:
        (stage.path / 'manifest.json').write_text('{"new": 1}')
        stage.commit()
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == ['manifest.json']
    assert (real / 'manifest.json').read_text() == '{"new": 1}'
    assert leftovers(tmp_path) == []


def test_refuses_a_target_that_is_not_a_model_directory(tmp_path):
    (tmp_path / 'file').write_text('x')
    (tmp_path / 'stuff').mkdir()
    (tmp_path / 'stuff' / 'thesis.txt').write_text('precious')
    for target, words in ((tmp_path / 'file', 'not a directory'), (tmp_path / 'stuff', 'not a model directory')):
        with pytest.raises(staging.QuantizeError, match=words):
            staging.StagedDir(target)
