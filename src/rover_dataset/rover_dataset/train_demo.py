"""Is the data learnable? sim drive -> rosbag -> rover-dataset -> train -> rover-quantize -> drive.

    python -m rover_dataset.train_demo --out build/train_demo [--seconds 240] [--steps 1200]

1. records the expert driving the sim as the recorder would (rover_dataset.sim_recording), each
   short episode starting off the centre line so that the data holds recoveries;
2. converts it with `rover-dataset build` (at the demo model's 320x180);
3. trains the demo-size ACT with the project's own trainer recipe (rover.demo_policy: frozen
   seeded backbone, L1 on action chunks), reading the dataset only through its LeRobot meta files
   (info.json -> episodes -> data parquet -> mp4 at from_timestamp + timestamp, padded chunks);
4. writes a LeRobot-layout checkpoint (dataset stats in the processor files) and runs
   `rover-quantize build CHECKPOINT --bag BAG` on the same bag;
5. drives the sim with it (`python -m rover.demo --model-dir`) and prints the summary line.
Needs rover_sim, rover_quantize, rover_policy and rover (the workspace), not LeRobot.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import lerobot_format as lf
from .inspect_preview import frames_of, load


def training_set(root, chunk: int):
    """images [n,h,w,3] uint8, states [n,2], action chunks [n,chunk,2] and their pad mask, like
    LeRobotDataset with delta_timestamps action=[0, 1/fps, ...]: clamped to the episode, padded."""
    ds = load(root)
    data = ds['data']
    n = len(data['index'])
    images = None
    for row, rgb in frames_of(ds):
        if images is None:
            images = np.empty((n, *rgb.shape), np.uint8)
        images[row] = rgb
    actions = np.empty((n, chunk, 2), np.float32)
    pad = np.zeros((n, chunk), bool)
    all_actions = np.asarray(data['action'].tolist(), np.float32)
    for e in ds['episodes']:
        a, b = e['dataset_from_index'], e['dataset_to_index']
        for i in range(a, b):
            idx = i + np.arange(chunk)
            pad[i] = idx >= b
            actions[i] = all_actions[np.minimum(idx, b - 1)]
    states = np.asarray(data['observation.state'].tolist(), np.float32)
    return images, states, actions, pad, ds


def train(dataset, out_ckpt: Path, steps: int, seed: int = 0) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from rover.demo_policy import DEMO_ACT, train_head
    from rover_quantize.act_config import make_config
    from rover_quantize.checkpoint import default_stats, load_checkpoint, write_random_checkpoint

    info = json.loads((Path(dataset) / 'meta' / 'info.json').read_text())
    hw = tuple(info['features'][lf.CAMERA_KEY]['shape'][:2])
    knobs = dict(DEMO_ACT, image_shape=hw, cameras=(lf.CAMERA_KEY.split('.')[-1],))
    images, states, actions, pad, ds = training_set(dataset, knobs['chunk_size'])
    # the dataset's stats for state and action (what lerobot-train puts in the processors); images
    # keep ImageNet's (LeRobot's use_imagenet_stats default)
    stats = default_stats(make_config(**knobs), seed)
    for key in (lf.STATE_KEY, lf.ACTION_KEY):
        stats[key] = {k: np.asarray(v, np.float32) for k, v in ds['stats'][key].items()}
    torch.manual_seed(seed)
    write_random_checkpoint(out_ckpt, seed=seed, stats=stats, **knobs)
    ck = load_checkpoint(out_ckpt)
    core = ck.core
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    held_out, train_idx = order[:len(order) // 10], order[len(order) // 10:]
    # the demo policy's trainer, with the padded chunk steps masked out of the loss
    pred = train_head(ck, images, states, actions, train_idx, held_out, steps, rng, pad=pad)
    first = (pred[:, 0, 0] - torch.from_numpy(actions[held_out, 0, 0])).abs().mean()
    tensors = load_file(str(out_ckpt / 'model.safetensors'))
    for name, value in core.state_dict().items():
        if f'model.{name}' in tensors:
            tensors[f'model.{name}'] = value.detach().contiguous()
    save_file(tensors, str(out_ckpt / 'model.safetensors'), metadata={'format': 'pt'})
    return {'frames': len(images), 'held_out_steering_mae_first': float(first)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m rover_dataset.train_demo', description=__doc__.split('\n')[0])
    p.add_argument('--out', type=Path, default=Path('build/train_demo'))
    p.add_argument('--seconds', type=float, default=240.0, help='length of the sim drive to learn from')
    p.add_argument('--episode-seconds', type=float, default=5.0,
                   help='each episode starts off the centre line, so the data shows recoveries')
    p.add_argument('--steps', type=int, default=1200)
    p.add_argument('--drive-seconds', type=float, default=60.0, help='closed-loop test drive (0: skip)')
    args = p.parse_args(argv)
    from .align import Options
    from .build import build, episode_table
    from .sim_recording import record
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    bag, dataset, ckpt, model = out / 'bag', out / 'dataset', out / 'checkpoint', out / 'model'
    if not bag.exists():
        record(bag, seconds=args.seconds, episode_s=args.episode_seconds, scatter=True)
    r = build([bag], dataset, opts=Options(), task='follow the track', resize=(180, 320), force=True)
    print(episode_table(r.plan, 30))
    print(f'dataset: {r.frames} frames in {r.seconds:.1f} s ({r.frames / r.seconds:.0f} frames/s)', flush=True)
    result = train(dataset, ckpt, args.steps)
    print('trained: ' + ' '.join(f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}' for k, v in result.items()))
    subprocess.run([sys.executable, '-m', 'rover_quantize.cli', 'build', str(ckpt), '--bag', str(bag), '-o', str(model), '--force'],
                   check=True)
    if args.drive_seconds > 0:
        return subprocess.run([sys.executable, '-m', 'rover.demo', '--model-dir', str(model),
                               '--seconds', str(args.drive_seconds)]).returncode
    return 0


if __name__ == '__main__':
    sys.exit(main())
