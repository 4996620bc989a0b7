"""Our ACT vs an independent LeRobot-style implementation loading the same checkpoint file.

The reference below shares no model code with rover_quantize: it follows LeRobot's
modeling_act.py structure (torch.nn.MultiheadAttention on (sequence, batch, dim) tensors,
BatchNorm2d in eval mode for the frozen BN, list-of-token assembly) and reads
model.safetensors itself, by LeRobot's key names. If our batch-first/2-D rewrite, BN folding,
loader or key names drifted, this breaks.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from conftest import TINY
from rover_quantize.checkpoint import load_checkpoint, write_random_checkpoint
from rover_quantize.export import policy_graph


class RefBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + idt)


class RefResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(RefBlock(64, 64, 1), RefBlock(64, 64, 1))
        self.layer2 = nn.Sequential(RefBlock(64, 128, 2), RefBlock(128, 128, 1))
        self.layer3 = nn.Sequential(RefBlock(128, 256, 2), RefBlock(256, 256, 1))
        self.layer4 = nn.Sequential(RefBlock(256, 512, 2), RefBlock(512, 512, 1))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class RefEncoderLayer(nn.Module):
    def __init__(self, d, h, ff, pre_norm, act):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, h)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.pre_norm, self.act = pre_norm, act

    def forward(self, x, pos):
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x + pos
        x = skip + self.self_attn(q, k, value=x)[0]
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = skip + self.linear2(self.act(self.linear1(x)))
        return x if self.pre_norm else self.norm2(x)


class RefDecoderLayer(nn.Module):
    def __init__(self, d, h, ff, pre_norm, act):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, h)
        self.multihead_attn = nn.MultiheadAttention(d, h)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.pre_norm, self.act = pre_norm, act

    def forward(self, x, mem, dpos, epos):
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x + dpos
        x = skip + self.self_attn(q, k, value=x)[0]
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = skip + self.multihead_attn(query=x + dpos, key=mem + epos, value=mem)[0]
        if self.pre_norm:
            skip = x
            x = self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = skip + self.linear2(self.act(self.linear1(x)))
        return x if self.pre_norm else self.norm3(x)


def ref_pos2d(d, fmap):
    not_mask = torch.ones_like(fmap[0, :1])
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    inv = 10000 ** (2 * (torch.arange(d, dtype=torch.float32) // 2) / d)
    x, y = x.unsqueeze(-1) / inv, y.unsqueeze(-1) / inv
    px = torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(3)
    py = torch.stack((y[..., 0::2].sin(), y[..., 1::2].cos()), dim=-1).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


class RefACT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, act = cfg.dim_model, {'relu': F.relu, 'gelu': F.gelu}[cfg.feedforward_activation]
        self.cfg = cfg
        self.backbone = RefResNet18()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([RefEncoderLayer(d, cfg.n_heads, cfg.dim_feedforward, cfg.pre_norm, act)
                                             for _ in range(cfg.n_encoder_layers)])
        self.encoder.norm = nn.LayerNorm(d) if cfg.pre_norm else nn.Identity()
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList([RefDecoderLayer(d, cfg.n_heads, cfg.dim_feedforward, cfg.pre_norm, act)
                                             for _ in range(cfg.n_decoder_layers)])
        self.decoder.norm = nn.LayerNorm(d)
        self.encoder_robot_state_input_proj = nn.Linear(cfg.state_dim, d)
        self.encoder_latent_input_proj = nn.Linear(cfg.latent_dim, d)
        self.encoder_img_feat_input_proj = nn.Conv2d(512, d, 1)
        self.encoder_1d_feature_pos_embed = nn.Embedding(2, d)
        self.decoder_pos_embed = nn.Embedding(cfg.chunk_size, d)
        self.action_head = nn.Linear(d, cfg.action_dim)

    def forward(self, images, state):
        b = state.shape[0]
        latent = torch.zeros(b, self.cfg.latent_dim)
        tokens = [self.encoder_latent_input_proj(latent), self.encoder_robot_state_input_proj(state)]
        pos = list(self.encoder_1d_feature_pos_embed.weight.unsqueeze(1))
        for img in images:
            f = self.backbone(img)
            p = ref_pos2d(self.cfg.dim_model // 2, f)
            f = self.encoder_img_feat_input_proj(f)
            tokens.extend(list(f.flatten(2).permute(2, 0, 1)))   # (h w) b c
            pos.extend(list(p.flatten(2).permute(2, 0, 1)))
        x, pos = torch.stack(tokens), torch.stack(pos)
        for layer in self.encoder.layers:
            x = layer(x, pos)
        mem = self.encoder.norm(x)
        y = torch.zeros(self.cfg.chunk_size, b, self.cfg.dim_model)
        dpos = self.decoder_pos_embed.weight.unsqueeze(1)
        for layer in self.decoder.layers:
            y = layer(y, mem, dpos, pos)
        return self.action_head(self.decoder.norm(y).transpose(0, 1))


@pytest.mark.parametrize('extra', [{}, {'pre_norm': True, 'feedforward_activation': 'gelu', 'n_decoder_layers': 2},
                                   {'cameras': ('front', 'rear')}])
def test_matches_lerobot_style_reference(tmp_path, extra):
    path = write_random_checkpoint(tmp_path / 'ck', seed=5, layout='new', **{**TINY, **extra})
    ck = load_checkpoint(path)
    ref = RefACT(ck.cfg).eval()
    # LeRobot's ACTPolicy keeps the model under "model."; the VAE encoder is training-only
    tensors = load_file(path / 'model.safetensors')
    state = {k[len('model.'):]: v for k, v in tensors.items()
             if k.startswith('model.') and not k.startswith('model.vae_encoder')}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.endswith('num_batches_tracked') for k in missing)
    n_cams = len(ck.cfg.image_features)
    torch.manual_seed(0)
    images = [torch.randn(2, 3, 96, 128) for _ in range(n_cams)]
    states = torch.randn(2, 2)
    with torch.no_grad():
        want = ref(images, states)
        got = ck.core(images, states)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # and the BN-folded, normalization-folded export graph agrees with the plain one
    image_u8 = [torch.randint(0, 256, (1, 96, 128, 3), dtype=torch.uint8) for _ in range(n_cams)]
    with torch.no_grad():
        plain = policy_graph(ck, fused=False)(*image_u8, states[:1])
        fused = policy_graph(ck, fused=True)(*image_u8, states[:1])
        s2d = policy_graph(ck, fused=True, s2d=True)(*image_u8, states[:1])
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s2d, plain, rtol=1e-4, atol=1e-4)
