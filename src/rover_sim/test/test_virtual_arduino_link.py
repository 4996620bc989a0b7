"""Issue 10: one virtual Arduino link per run. The sim node derives a path of its own when
none is given, and refuses (exit 2, clear error) a link another running instance owns,
instead of silently taking over the other run's port."""
import os

from rover_bridge.twin.pty_board import VirtualArduino
from rover_common.process import NodeProcess, wait_for
from rover_common.ros_env import localhost_env, pick_domain_id
from rover_sim.run_link import run_link_path


def test_sim_node_refuses_the_live_link_of_another_run(tmp_path):
    link = str(tmp_path / 'arduino')
    with VirtualArduino(link=link) as other_run:
        target = os.readlink(link)
        sim = NodeProcess('rover_sim.sim_node', 'sim', params={'serial_link': link, 'width': 64, 'height': 36},
                          env=localhost_env(pick_domain_id())).start()
        try:
            assert sim.wait_exit(60.0) == 2, sim.output()
        finally:
            sim.stop()
        assert 'refusing to replace it' in sim.output() and str(os.getpid()) in sim.output()
        assert os.readlink(link) == target == other_run.device  # the other run keeps its board


def test_sim_node_without_a_link_uses_a_per_run_path(tmp_path):
    env = dict(localhost_env(pick_domain_id()), XDG_RUNTIME_DIR=str(tmp_path))
    sim = NodeProcess('rover_sim.sim_node', 'sim', params={'width': 64, 'height': 36}, env=env).start()
    try:
        assert wait_for(lambda: 'virtual Arduino on' in sim.output() or not sim.alive(), 60.0), sim.output()
        expected = run_link_path(domain_id=env['ROS_DOMAIN_ID'], run_id=sim.proc.pid)
        expected = expected.replace(os.path.dirname(expected), str(tmp_path))
        assert f'virtual Arduino on {expected};' in sim.output(), sim.output()
        assert os.path.islink(expected)
    finally:
        assert sim.stop() == 0, sim.output()
    assert not os.path.lexists(expected)
