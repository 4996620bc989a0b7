"""Bad input: one line on stderr, exit code 2, and no dataset left behind."""
import pytest

import synthbag as sb
from rover_dataset.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def assert_one_line(code, err, *words):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_bag_without_images(tmp_path, capsys):
    bag = sb.write(sb.drive(1.0), tmp_path / 'bag', with_images=False)
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(tmp_path / 'ds')), 'no camera images')
    assert list(tmp_path.iterdir()) == [bag]


def test_bag_without_commands(tmp_path, capsys):
    bag = sb.write(sb.drive(1.0), tmp_path / 'bag', with_cmd=False)
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(tmp_path / 'ds')), 'no commands', 'rover/cmd')


def test_bag_without_state(tmp_path, capsys):
    bag = sb.write(sb.drive(1.0), tmp_path / 'bag', with_state=False)
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(tmp_path / 'ds')), 'rover/state')


def test_clock_jump(tmp_path, capsys):
    rec = sb.drive(2.0)
    # the camera clock jumps 5 s ahead at frame 30 while the recording goes on normally
    rec.frames = [(f, s + (5 * sb.NS if f >= 30 else 0), log) for f, s, log in rec.frames]
    bag = sb.write(rec, tmp_path / 'bag')
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(tmp_path / 'ds')), 'clock jump')


def test_commands_on_another_clock(tmp_path, capsys):
    rec = sb.drive(1.0)
    rec.cmd = [(t - 100 * sb.NS, log, s, th) for t, log, s, th in rec.cmd]
    bag = sb.write(rec, tmp_path / 'bag')
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(tmp_path / 'ds')), 'different clocks')


@pytest.mark.parametrize('argv', [
    ['build', 'missing-bag', '-o', 'ds'],
    ['build', '--fps', 'x', 'bag', '-o', 'ds'],
    ['inspect', 'not-a-dataset'],
])
def test_bad_arguments(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err


def test_existing_output_needs_force(tmp_path, capsys):
    bag = sb.write(sb.drive(1.0), tmp_path / 'bag')
    out = tmp_path / 'ds'
    out.mkdir()
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(out)), 'already exists')
    assert main(['build', str(bag), '-o', str(out), '--force', '--no-progress']) == 0
    assert (out / 'meta' / 'info.json').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag', 'ds']  # no temp dirs left


def test_failed_conversion_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A failure while writing (here: the encoder) leaves neither a dataset nor a partial directory."""
    bag = sb.write(sb.drive(1.0), tmp_path / 'bag')
    from rover_dataset import lerobot_format

    def broken(self, rgb):
        raise OSError('disk full')
    monkeypatch.setattr(lerobot_format.VideoFiles, 'write', broken)
    assert_one_line(*run(capsys, 'build', str(bag), '-o', str(tmp_path / 'ds')), 'disk full')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']
