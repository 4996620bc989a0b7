"""Each simulated-rover run has a virtual Arduino link of its own."""
import os
import tempfile

from rover_sim.run_link import run_link_path


def test_run_link_paths_differ_by_domain_namespace_and_run(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_RUNTIME_DIR', str(tmp_path))
    monkeypatch.setenv('ROS_DOMAIN_ID', '17')
    path = run_link_path('/car1', run_id=42)
    assert path == str(tmp_path / 'rover_sim_arduino-d17-car1-42')
    others = {run_link_path('/car2', run_id=42), run_link_path('/car1', run_id=43),
              run_link_path('/car1', domain_id='18', run_id=42), run_link_path()}
    assert path not in others and len(others) == 4
    monkeypatch.delenv('XDG_RUNTIME_DIR')
    assert os.path.dirname(run_link_path()) == tempfile.gettempdir()
