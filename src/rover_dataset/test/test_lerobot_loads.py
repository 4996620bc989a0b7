"""Where LeRobot is installed (a training machine), its own loader reads what we wrote."""
import numpy as np
import pyarrow.parquet as pq
import pytest

import synthbag as sb
from rover_dataset.cli import main


def test_lerobot_dataset_loads(tmp_path):
    ld = pytest.importorskip('lerobot.datasets.lerobot_dataset', reason='LeRobot is not installed here')
    rec = sb.drive(3.0)
    rec.episode = [(sb.at(0.0), True), (sb.at(1.5), False), (sb.at(1.5), True)]
    bag = sb.write(rec, tmp_path / 'bag')
    root = tmp_path / 'ds'
    assert main(['build', str(bag), '-o', str(root), '--no-progress']) == 0
    ds = ld.LeRobotDataset('local/rover_test', root=root, delta_timestamps={'action': [k / 30 for k in range(10)]})
    data = pq.read_table(root / 'data' / 'chunk-000' / 'file-000.parquet').to_pydict()
    assert len(ds) == len(data['index']) and ds.num_episodes == 2 and ds.fps == 30
    last = len(ds) - 1
    item = ds[last]
    assert tuple(item['observation.images.cam_front'].shape) == (3, 64, 96)
    assert item['task'] == 'follow the track'
    np.testing.assert_allclose(item['action'][0].numpy(), data['action'][last])
    assert item['action_is_pad'][1:].all()  # the episode ends there
