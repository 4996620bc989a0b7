"""The demo's driving skill: an ACT that learned to follow the simulated track.

The ResNet-18 backbone keeps the random weights of a fixed seed (frozen, as
LeRobot freezes batch norm); the transformer, projections and action head are
trained by behaviour cloning of the pure-pursuit driver (rover_sim.expert) on
frames the synthetic camera renders around the track, with the car displaced
and turned so the policy also learns to come back to the centre line.

Only the trained (non-backbone) tensors are kept in the repository
(`demo_policy.safetensors`, float16, ~2 MB); set-up rebuilds the backbone from
the seed and checks its hash before combining the two.

    python -m rover.demo_policy          # re-train (about 10 minutes on 2 cores)
"""
import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

TRAINED = Path(__file__).with_name('demo_policy.safetensors')
SEED = 0
# Small enough that inference on 2 development cores takes ~15 ms; otherwise
# LeRobot's ACT architecture (ResNet-18, post-norm transformer, chunking).
DEMO_ACT = dict(dim_model=128, n_heads=4, dim_feedforward=512, n_encoder_layers=2,
                n_decoder_layers=1, chunk_size=30, n_action_steps=30, image_shape=(180, 320))
FROZEN_PREFIXES = ('model.backbone.', 'model.vae_encoder')


def _backbone_hash(tensors: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(k for k in tensors if k.startswith('model.backbone.')):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(tensors[key].float().numpy()).tobytes())
    return digest.hexdigest()


def write_checkpoint(path: Path, trained: Path = TRAINED) -> Path:
    """The demo checkpoint (LeRobot layout): seeded backbone + trained rest."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from rover_quantize.checkpoint import write_random_checkpoint
    path = write_random_checkpoint(path, seed=SEED, **DEMO_ACT)
    model_file = path / 'model.safetensors'
    tensors = load_file(str(model_file))
    with safe_open(str(trained), 'pt') as f:
        expected = f.metadata().get('backbone_sha256')
        learned = {k: f.get_tensor(k) for k in f.keys()}
    if expected != _backbone_hash(tensors):
        raise RuntimeError(
            f'{trained.name} was trained on another seeded backbone than this set-up builds '
            '(rover_quantize or torch changed how random weights are drawn): '
            're-train with `python -m rover.demo_policy`')
    for key, value in learned.items():
        if key not in tensors or tensors[key].shape != value.shape:
            raise RuntimeError(f'{trained.name}: {key} does not fit the demo ACT config')
        tensors[key] = value.float()
    save_file(tensors, str(model_file), metadata={'format': 'pt'})
    return path


def _track_views(n: int, seed: int):
    """n camera frames (BGR, full size) from poses scattered around the track, the
    car displaced and turned so a policy also sees how to come back; yields
    (frame, car, expert)."""
    import math
    from rover_sim.expert import PurePursuit
    from rover_sim.track import StadiumTrack, render_floor
    from rover_sim.track_camera import TrackCamera
    from rover_sim.vehicle_model import BicycleModel

    rng = np.random.default_rng(seed)
    track = StadiumTrack()
    camera = TrackCamera(render_floor(track))
    expert = PurePursuit(track)
    for _ in range(n):
        x, y, heading = track.centre_point(rng.uniform(0, track.length))
        offset = float(np.clip(rng.normal(0, 0.15), -0.35, 0.35))   # metres, + = left
        x, y = x - math.sin(heading) * offset, y + math.cos(heading) * offset
        yaw = heading + float(np.clip(rng.normal(0, 0.15), -0.4, 0.4))
        car = BicycleModel(x=x, y=y, yaw=yaw)
        car.speed = expert.throttle * car.params.max_speed * rng.uniform(0.5, 1.0)
        yield camera.render(x, y, yaw), car, expert


def track_frames(n: int, seed: int) -> np.ndarray:
    """RGB camera frames of the track (calibration data for the demo model)."""
    return np.stack([frame[..., ::-1] for frame, _, _ in _track_views(n, seed)])


def render_dataset(n: int, seed: int, chunk: int, image_hw=(180, 320)):
    """Model-sized frames with the expert's next `chunk` actions as labels."""
    from rover_policy.preprocessing import prepare_image
    rng = np.random.default_rng(seed + 1000)
    images = np.empty((n, *image_hw, 3), np.uint8)
    states = np.empty((n, 2), np.float32)
    actions = np.empty((n, chunk, 2), np.float32)
    for i, (frame, car, expert) in enumerate(_track_views(n, seed)):
        images[i] = prepare_image(frame, *image_hw)
        for k in range(chunk):
            steering, throttle = expert.command(car.x, car.y, car.yaw)
            actions[i, k] = steering, throttle
            car.step(1 / 30, steering, throttle)
        # The state (what the Arduino applied last) is drawn at random: were it the
        # expert's own command, the policy would learn to copy it and ignore the
        # camera, then hold whatever steering it had in closed loop.
        states[i] = rng.uniform(-0.6, 0.6), rng.uniform(0.15, 0.45)
    return images, states, actions


def train_head(ck, images, states, actions, train_idx, held_out, steps: int, rng, pad=None,
               batch_size: int = 32, log_every: int = 100):
    """The project's trainer (behaviour cloning, ACT's recipe on a frozen backbone): features of
    the frozen backbone computed once, then AdamW (3e-4, cosine) on the rest with ACT's L1 on the
    normalized action chunks. `pad` [n, chunk] marks chunk steps past the end of an episode
    (LeRobot's action_is_pad): they are left out of the loss. Trains `ck.core` in place; returns
    its predictions for `held_out`, unnormalized. Used by `python -m rover.demo_policy` and
    `rover_dataset.train_demo`."""
    import torch
    from rover_quantize.export import policy_graph

    core = ck.core
    backbone = policy_graph(ck, 'backbone', fused=False)
    with torch.no_grad():
        feats = torch.cat([backbone.features_of(torch.from_numpy(images[i:i + 50]))
                           for i in range(0, len(images), 50)])
    state_scale, state_offset = (torch.tensor(np.asarray(v, np.float32)) for v in ck.norm['state'])
    act_scale, act_offset = (torch.tensor(np.asarray(v, np.float32)) for v in ck.norm['action'])
    norm_states = torch.from_numpy(states) * state_scale + state_offset
    # the unnormalize, inverted; LeRobot's eps: a constant action (a steady throttle) has std 0
    norm_actions = (torch.from_numpy(actions) - act_offset) / (act_scale + 1e-8)
    keep = None if pad is None else torch.from_numpy(~np.asarray(pad, bool)).float()[..., None]

    trainable = [p for name, p in core.named_parameters()
                 if not (f'model.{name}').startswith(FROZEN_PREFIXES)]
    optimizer = torch.optim.AdamW(trainable, lr=3e-4, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    # core.head runs samples one by one (batch-1 export graphs); vmap batches the same code
    head = torch.vmap(lambda features, state: core._head_one([features], state, None))
    core.train()
    for step in range(steps):
        batch = rng.choice(train_idx, batch_size)
        pred = head(feats[batch], norm_states[batch])
        if keep is None:
            loss = torch.nn.functional.l1_loss(pred, norm_actions[batch])   # ACT's L1 loss
        else:  # ACT's L1 with the padded steps masked out
            loss = ((pred - norm_actions[batch]).abs() * keep[batch]).sum() / (keep[batch].sum() * pred.shape[-1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if log_every and step % log_every == 0:
            print(f'step {step:5d}  l1 {loss.item():.4f}', flush=True)
    core.eval()
    with torch.no_grad():
        return head(feats[held_out], norm_states[held_out]) * act_scale + act_offset


def train(out: Path = TRAINED, samples: int = 2000, steps: int = 600, seed: int = SEED) -> dict:
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file
    from rover_quantize.checkpoint import load_checkpoint, write_random_checkpoint

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_random_checkpoint(Path(tmp) / 'ckpt', seed=SEED, **DEMO_ACT)
        ck = load_checkpoint(ckpt)
        backbone_sha = _backbone_hash(load_file(str(ckpt / 'model.safetensors')))
    cfg, core = ck.cfg, ck.core
    images, states, actions = render_dataset(samples + 200, seed + 1, cfg.chunk_size, cfg.image_hw)
    train_idx, held_out = np.arange(samples), np.arange(samples, samples + 200)
    pred = train_head(ck, images, states, actions, train_idx, held_out, steps, np.random.default_rng(seed))
    steering_error = (pred[..., 0] - torch.from_numpy(actions[held_out, :, 0])).abs()
    result = {'held_out_steering_mae_first': float(steering_error[:, 0].mean()),
              'held_out_steering_mae_chunk': float(steering_error.mean())}
    learned = {f'model.{k}': v.detach().to(torch.float16).contiguous()
               for k, v in core.state_dict().items()
               if not f'model.{k}'.startswith(FROZEN_PREFIXES)}
    save_file(learned, str(out), metadata={'backbone_sha256': backbone_sha, 'seed': str(seed),
                                           'config': json.dumps(DEMO_ACT), **{k: f'{v:.4f}' for k, v in result.items()}})
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Train the demo policy on the simulated track.')
    parser.add_argument('--samples', type=int, default=2000)
    parser.add_argument('--steps', type=int, default=600)
    parser.add_argument('-o', '--output', type=Path, default=TRAINED)
    args = parser.parse_args(argv)
    result = train(args.output, args.samples, args.steps)
    print(f'demo policy: {args.output} ' + ' '.join(f'{k}={v:.4f}' for k, v in result.items()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
