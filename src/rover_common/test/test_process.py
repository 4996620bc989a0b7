"""NodeProcess leaves nothing behind and keeps the child's output readable after stop()."""
import tempfile

from rover_common.process import NodeProcess


def test_node_process_removes_its_directory_and_keeps_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    proc = NodeProcess('rover_common.no_such_module', 'probe', params={'a': 1}).start()
    proc.wait_exit(30)
    proc.stop()
    assert list(tmp_path.iterdir()) == []
    assert 'No module named rover_common.no_such_module' in proc.output()
