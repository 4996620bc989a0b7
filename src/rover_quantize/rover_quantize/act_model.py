"""The ACT inference path in plain PyTorch (no torchvision, no LeRobot).

Module and parameter names mirror LeRobot's `ACT` (modeling_act.py) so that the
state dict of `ActCore` has exactly the keys of LeRobot's `policy.model.*`
inference path: `backbone.*` (torchvision ResNet behind IntermediateLayerGetter,
so conv1/bn1/layer1..layer4 and no fc), `encoder.layers.N.*`, `decoder.*`,
`encoder_*_input_proj`, `encoder_1d_feature_pos_embed`, `decoder_pos_embed`,
`action_head`. nn.MultiheadAttention's packed `in_proj_weight`/`in_proj_bias` +
`out_proj` layout is kept. The VAE encoder is only built when asked (to write
LeRobot-layout checkpoints); inference never uses it (the latent is zero).

`ActPolicyGraph` wraps the core with the normalization folded in: it takes the
camera image as uint8 NHWC RGB and the raw state, and returns unnormalized actions.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .act_config import RESNET_LAYERS, ActConfig

BN_EPS = 1e-5  # torchvision FrozenBatchNorm2d default


class FrozenBatchNorm2d(nn.Module):
    """torchvision.ops.FrozenBatchNorm2d: fixed affine batch norm (4 buffers, no num_batches_tracked)."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer('weight', torch.ones(n))
        self.register_buffer('bias', torch.zeros(n))
        self.register_buffer('running_mean', torch.zeros(n))
        self.register_buffer('running_var', torch.ones(n))
        self.collect_stats = False  # set by the random-checkpoint writer only

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        scale = self.weight * (self.running_var + BN_EPS).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: Tensor) -> Tensor:
        if self.collect_stats:  # behave like a trained BN: statistics of what flows through
            self.running_mean.copy_(x.mean(dim=(0, 2, 3)))
            self.running_var.copy_(x.var(dim=(0, 2, 3)))
        scale, shift = self.scale_shift()
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


def _conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = FrozenBatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = FrozenBatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            FrozenBatchNorm2d(cout))
        else:
            self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNetBackbone(nn.Module):
    """torchvision ResNet (BasicBlock) up to layer4, i.e. what IntermediateLayerGetter keeps."""

    def __init__(self, blocks=(2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(*[BasicBlock(cin if j == 0 else width, width, stride if j == 0 else 1)
                                    for j in range(count)])
            setattr(self, f'layer{i + 1}', layer)
            cin = width

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def fold_frozen_bn(backbone: ResNetBackbone) -> nn.Module:
    """A copy of the backbone with every FrozenBatchNorm2d folded into its conv (for export).

    The arithmetic is the same (conv then per-channel affine) up to float rounding.
    """
    import copy
    fused = copy.deepcopy(backbone)

    def fold(conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> nn.Conv2d:
        scale, shift = bn.scale_shift()
        new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                        conv.padding, conv.dilation, conv.groups, bias=True)
        with torch.no_grad():
            new.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            new.bias.copy_(shift)
        return new

    fused.conv1 = fold(fused.conv1, fused.bn1)
    fused.bn1 = nn.Identity()
    for name in ('layer1', 'layer2', 'layer3', 'layer4'):
        for block in getattr(fused, name):
            block.conv1 = fold(block.conv1, block.bn1)
            block.bn1 = nn.Identity()
            block.conv2 = fold(block.conv2, block.bn2)
            block.bn2 = nn.Identity()
            if block.downsample is not None:
                block.downsample = nn.Sequential(fold(block.downsample[0], block.downsample[1]))
    return fused


class MultiheadAttention(nn.Module):
    """nn.MultiheadAttention's parameters and arithmetic, batch-first, written out for clean ONNX."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.head_dim = dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """query [Lq, E], key/value [Lk, E] (one sample: batch-1 graphs stay 2-D, so ONNX
        Runtime gets plain Gemms without reshapes around them)."""
        d = self.dim
        w, b = self.in_proj_weight, self.in_proj_bias
        q = F.linear(query, w[:d], b[:d])
        k = F.linear(key, w[d:2 * d], b[d:2 * d])
        v = F.linear(value, w[2 * d:], b[2 * d:])
        lq, lk = q.shape[0], k.shape[0]
        q = q.reshape(lq, self.heads, self.head_dim).transpose(0, 1)      # [H, Lq, hd]
        k = k.reshape(lk, self.heads, self.head_dim).permute(1, 2, 0)     # [H, hd, Lk]
        v = v.reshape(lk, self.heads, self.head_dim).transpose(0, 1)      # [H, Lk, hd]
        scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)), k)
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(0, 1).reshape(lq, d)
        return self.out_proj(out)


def _activation(name: str):
    return {'relu': F.relu, 'gelu': F.gelu}[name]


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ActConfig):
        super().__init__()
        self.self_attn = MultiheadAttention(cfg.dim_model, cfg.n_heads)
        self.linear1 = nn.Linear(cfg.dim_model, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, cfg.dim_model)
        self.norm1 = nn.LayerNorm(cfg.dim_model)
        self.norm2 = nn.LayerNorm(cfg.dim_model)
        self.activation = _activation(cfg.feedforward_activation)
        self.pre_norm = cfg.pre_norm

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        qk = x + pos
        x = skip + self.self_attn(qk, qk, x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = skip + self.linear2(self.activation(self.linear1(x)))
        if not self.pre_norm:
            x = self.norm2(x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: ActConfig, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(cfg.dim_model) if cfg.pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos)
        return self.norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ActConfig):
        super().__init__()
        self.self_attn = MultiheadAttention(cfg.dim_model, cfg.n_heads)
        self.multihead_attn = MultiheadAttention(cfg.dim_model, cfg.n_heads)
        self.linear1 = nn.Linear(cfg.dim_model, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, cfg.dim_model)
        self.norm1 = nn.LayerNorm(cfg.dim_model)
        self.norm2 = nn.LayerNorm(cfg.dim_model)
        self.norm3 = nn.LayerNorm(cfg.dim_model)
        self.activation = _activation(cfg.feedforward_activation)
        self.pre_norm = cfg.pre_norm

    def forward(self, x: Tensor, memory: Tensor, dec_pos: Tensor, mem_pos: Tensor) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        qk = x + dec_pos
        x = skip + self.self_attn(qk, qk, x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = skip + self.multihead_attn(x + dec_pos, memory + mem_pos, memory)
        if self.pre_norm:
            skip = x
            x = self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = skip + self.linear2(self.activation(self.linear1(x)))
        if not self.pre_norm:
            x = self.norm3(x)
        return x


class Decoder(nn.Module):
    def __init__(self, cfg: ActConfig):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers)])
        self.norm = nn.LayerNorm(cfg.dim_model)

    def forward(self, x, memory, dec_pos, mem_pos):
        for layer in self.layers:
            x = layer(x, memory, dec_pos, mem_pos)
        return self.norm(x)


def sinusoidal_2d(dimension: int, h: int, w: int) -> Tensor:
    """ACTSinusoidalPositionEmbedding2d for an (h, w) feature map: (1, 2*dimension, h, w)."""
    not_mask = torch.ones(1, h, w)
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    y = y / (y[:, -1:, :] + 1e-6) * (2 * math.pi)
    x = x / (x[:, :, -1:] + 1e-6) * (2 * math.pi)
    inv_freq = 10000 ** (2 * (torch.arange(dimension, dtype=torch.float32) // 2) / dimension)
    x = x.unsqueeze(-1) / inv_freq
    y = y.unsqueeze(-1) / inv_freq
    pos_x = torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(3)
    pos_y = torch.stack((y[..., 0::2].sin(), y[..., 1::2].cos()), dim=-1).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def sinusoidal_1d(num_positions: int, dimension: int) -> Tensor:
    """create_sinusoidal_pos_embedding (only for the VAE encoder buffer of written checkpoints)."""
    pos = np.arange(num_positions)[:, None]
    hid = np.arange(dimension)[None, :]
    table = pos / np.power(10000, 2 * (hid // 2) / dimension)
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()


class ActCore(nn.Module):
    """LeRobot's `ACT` module (the `model.` part of ACTPolicy), inference path.

    forward(images: list of normalized NCHW float tensors, state, env_state) -> normalized actions
    """

    def __init__(self, cfg: ActConfig, with_vae_encoder: bool = False):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim_model
        if with_vae_encoder and cfg.use_vae:
            self.vae_encoder = Encoder(cfg, cfg.n_vae_encoder_layers)
            self.vae_encoder_cls_embed = nn.Embedding(1, d)
            if cfg.robot_state_feature:
                self.vae_encoder_robot_state_input_proj = nn.Linear(cfg.state_dim, d)
            self.vae_encoder_action_input_proj = nn.Linear(cfg.action_dim, d)
            self.vae_encoder_latent_output_proj = nn.Linear(d, cfg.latent_dim * 2)
            n_tokens = 1 + cfg.chunk_size + (1 if cfg.robot_state_feature else 0)
            self.register_buffer('vae_encoder_pos_enc', sinusoidal_1d(n_tokens, d).unsqueeze(0))
        if cfg.image_features:
            self.backbone = ResNetBackbone(RESNET_LAYERS[cfg.vision_backbone])
        self.encoder = Encoder(cfg, cfg.n_encoder_layers)
        self.decoder = Decoder(cfg)
        if cfg.robot_state_feature:
            self.encoder_robot_state_input_proj = nn.Linear(cfg.state_dim, d)
        if cfg.env_state_feature:
            self.encoder_env_state_input_proj = nn.Linear(cfg.env_state_feature.shape[0], d)
        self.encoder_latent_input_proj = nn.Linear(cfg.latent_dim, d)
        if cfg.image_features:
            self.encoder_img_feat_input_proj = nn.Conv2d(cfg.backbone_channels, d, kernel_size=1)
        n_1d = 1 + (1 if cfg.robot_state_feature else 0) + (1 if cfg.env_state_feature else 0)
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d, d)
        self.decoder_pos_embed = nn.Embedding(cfg.chunk_size, d)
        self.action_head = nn.Linear(d, cfg.action_dim)
        if cfg.image_features:
            h, w = cfg.feature_map_hw
            cam = sinusoidal_2d(d // 2, h, w).flatten(2).transpose(1, 2)  # (1, h*w, d)
            self.register_buffer('cam_pos_embed', cam, persistent=False)
        for p in list(self.encoder.parameters()) + list(self.decoder.parameters()):
            if p.dim() > 1:  # LeRobot's _reset_parameters
                nn.init.xavier_uniform_(p)

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        return (backbone or self.backbone)(image)

    def head(self, features: list[Tensor], state: Tensor | None, env_state: Tensor | None) -> Tensor:
        """Everything after the backbone: feature maps (+ normalized state) -> normalized actions.

        Samples go through the transformer one at a time as 2-D [tokens, dim] tensors (the
        exported graphs are batch 1); the arithmetic is LeRobot's, batched or not.
        """
        batch = features[0].shape[0] if features else env_state.shape[0]
        outs = [self._head_one([f[i] for f in features],
                               None if state is None else state[i],
                               None if env_state is None else env_state[i]) for i in range(batch)]
        return outs[0].unsqueeze(0) if batch == 1 else torch.stack(outs)

    def _head_one(self, features: list[Tensor], state: Tensor | None, env_state: Tensor | None) -> Tensor:
        # Zero latent: encoder_latent_input_proj(0) is its bias.
        tokens = [self.encoder_latent_input_proj.bias.reshape(1, -1)]
        if self.cfg.robot_state_feature:
            tokens.append(self.encoder_robot_state_input_proj(state).reshape(1, -1))
        if self.cfg.env_state_feature:
            tokens.append(self.encoder_env_state_input_proj(env_state).reshape(1, -1))
        pos = [self.encoder_1d_feature_pos_embed.weight]
        for fmap in features:                                  # [C, h, w]
            proj = self.encoder_img_feat_input_proj(fmap.unsqueeze(0))[0]  # [d, h, w]
            tokens.append(proj.flatten(1).transpose(0, 1))     # [h*w, d], row-major like (h w)
            pos.append(self.cam_pos_embed[0])
        x = torch.cat(tokens, dim=0)
        pos = torch.cat(pos, dim=0)
        memory = self.encoder(x, pos)
        dec_pos = self.decoder_pos_embed.weight
        queries = torch.zeros(self.cfg.chunk_size, self.cfg.dim_model, dtype=x.dtype)
        out = self.decoder(queries, memory, dec_pos, pos)
        return self.action_head(out)                           # [chunk, action_dim]

    def forward(self, images: list[Tensor], state: Tensor | None = None,
                env_state: Tensor | None = None) -> Tensor:
        return self.head([self.backbone(img) for img in images], state, env_state)


class Affine(nn.Module):
    """x * scale + offset along the last (or channel) axis: every LeRobot normalization mode is affine."""

    def __init__(self, scale: np.ndarray, offset: np.ndarray, shape):
        super().__init__()
        self.register_buffer('scale', torch.as_tensor(np.asarray(scale, np.float32)).reshape(shape))
        self.register_buffer('offset', torch.as_tensor(np.asarray(offset, np.float32)).reshape(shape))

    def forward(self, x):
        return x * self.scale + self.offset


class ActPolicyGraph(nn.Module):
    """What gets exported: uint8 NHWC RGB image(s) + raw state -> unnormalized actions.

    `norm` maps 'image' (per-channel, applied to pixels/255), 'state', 'env_state' to
    (scale, offset) for normalization and 'action' to (scale, offset) for *un*normalization.
    `part` selects the whole model, only the backbone (image -> features), or only the
    head (features + state -> actions), which is the split the Hailo hybrid uses.
    """

    def __init__(self, core: ActCore, norm: dict, part: str = 'full', fused_backbone: nn.Module | None = None,
                 fold_image_norm: bool = False, s2d_stem: bool = False):
        super().__init__()
        cfg = core.cfg
        self.core, self.part, self.cfg = core, part, cfg
        self.backbone = fused_backbone if fused_backbone is not None else getattr(core, 'backbone', None)
        self.pixel_pad = None
        if cfg.image_features:
            scale, offset = norm['image']
            # pixels/255 then the per-channel affine, as one multiply-add
            self.image_norm = Affine(np.asarray(scale) / 255.0, offset, (1, 3, 1, 1))
            if fold_image_norm:
                self._fold_image_norm(np.asarray(scale, np.float64) / 255.0, np.asarray(offset, np.float64),
                                      s2d_stem)
        self.state_norm = Affine(*norm['state'], (1, -1)) if cfg.robot_state_feature else None
        self.env_norm = Affine(*norm['env_state'], (1, -1)) if cfg.env_state_feature else None
        self.action_unnorm = Affine(*norm['action'], (1, 1, -1))

    def _fold_image_norm(self, a: np.ndarray, b: np.ndarray, s2d_stem: bool = False):
        """Fold the per-channel image normalization into conv1, exactly.

        conv1(pad0(a*x + b)) == conv1'(pad_m(x)) with conv1' = W*a, bias + sum(W*b), no padding,
        and pad_m padding each channel with m = -b/a, the pixel value that normalizes to 0.
        So conv1 sees raw pixels (0..255, exact in uint8 with scale 1 once quantized) and
        no per-channel multiply-add runs on the full image (slow in channels-last layouts).
        """
        import copy
        if self.backbone is self.core.backbone:
            self.backbone = copy.deepcopy(self.backbone)
        conv = self.backbone.conv1
        bn = self.backbone.bn1
        weight = conv.weight.detach().double()
        bias = torch.zeros(weight.shape[0], dtype=torch.float64) if conv.bias is None else conv.bias.detach().double()
        if not isinstance(bn, nn.Identity):  # unfused backbone: fold BN here too
            bn_scale, bn_shift = (t.double() for t in bn.scale_shift())
            weight = weight * bn_scale.reshape(-1, 1, 1, 1)
            bias = bias * bn_scale + bn_shift
            self.backbone.bn1 = nn.Identity()
        a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
        pad = conv.padding[0]
        weight_px = weight * a_t.reshape(1, 3, 1, 1)
        bias_px = bias + (weight * b_t.reshape(1, 3, 1, 1)).sum(dim=(1, 2, 3))
        h, w = self.cfg.image_hw
        m = torch.from_numpy(-b / a).float()
        k, stride = conv.kernel_size[0], conv.stride[0]
        if s2d_stem and (k, stride, pad) == (7, 2, 3) and h % 2 == 0 and w % 2 == 0:
            # 7x7 stride-2 conv on 3 channels == 4x4 stride-1 conv on the 12 channels of a 2x2
            # space-to-depth of the image, with the kernel shifted by one pixel so the padding is
            # whole 2x2 blocks (4 pixels; the extra row/column meets a zero weight). Same sums, but
            # 12 input channels instead of 3 keep the int8 kernels busy, and the rearrangement runs
            # on the uint8 image before anything else.
            w8 = torch.zeros(weight_px.shape[0], 3, 8, 8, dtype=torch.float64)
            w8[:, :, 1:, 1:] = weight_px
            o = w8.shape[0]
            w4 = w8.reshape(o, 3, 4, 2, 4, 2).permute(0, 3, 5, 1, 2, 4).reshape(o, 12, 4, 4)
            new = nn.Conv2d(12, o, 4, 1, 0, bias=True)
            with torch.no_grad():
                new.weight.copy_(w4.float())
                new.bias.copy_(bias_px.float())
            self.backbone.conv1 = new
            self.pixel_pad = PixelPad((2, 1, 2, 1), m.repeat(4), h // 2, w // 2, s2d=True)
        else:
            new = nn.Conv2d(3, conv.out_channels, conv.kernel_size, conv.stride, 0, bias=True)
            with torch.no_grad():
                new.weight.copy_(weight_px.float())
                new.bias.copy_(bias_px.float())
            self.backbone.conv1 = new
            self.pixel_pad = PixelPad((pad, pad, pad, pad), m, h, w)

    def input_names(self) -> list[str]:
        names = []
        if self.part in ('full', 'backbone'):
            names += image_input_names(self.cfg)
        if self.part == 'head':
            names += feature_names(self.cfg)
        if self.part in ('full', 'head'):
            if self.cfg.robot_state_feature:
                names.append('state')
            if self.cfg.env_state_feature:
                names.append('environment_state')
        return names

    def output_names(self) -> list[str]:
        return feature_names(self.cfg) if self.part == 'backbone' else ['actions']

    def features_of(self, image_u8_nhwc: Tensor) -> Tensor:
        if self.pixel_pad is not None:
            return self.backbone(self.pixel_pad(image_u8_nhwc))
        x = image_u8_nhwc.permute(0, 3, 1, 2).to(torch.float32)
        return self.backbone(self.image_norm(x))

    def forward(self, *inputs):
        cfg = self.cfg
        n_cams = len(cfg.image_features)
        rest = list(inputs)
        if self.part in ('full', 'backbone'):
            images, rest = rest[:n_cams], rest[n_cams:]
            feats = [self.features_of(img) for img in images]
            if self.part == 'backbone':
                return tuple(feats) if len(feats) > 1 else feats[0]
        else:
            feats, rest = rest[:n_cams], rest[n_cams:]
        state = self.state_norm(rest.pop(0)) if cfg.robot_state_feature else None
        env = self.env_norm(rest.pop(0)) if cfg.env_state_feature else None
        actions = self.core.head(feats, state, env)
        return self.action_unnorm(actions)


class PixelPad(nn.Module):
    """Pad raw pixels with each channel's 'normalizes to zero' value m (constant concats).

    Takes the uint8 NHWC image; with `s2d`, 2x2 pixel blocks first become 12 channels
    (channel = (dy*2 + dx)*3 + c) and the padding (left, right, top, bottom) counts blocks.
    Returns float NCHW.
    """

    def __init__(self, pads, m: Tensor, h: int, w: int, s2d: bool = False):
        super().__init__()
        left, right, top, bottom = pads
        c = m.numel()
        m = m.reshape(1, c, 1, 1)
        self.s2d = s2d
        self.register_buffer('left', m.expand(1, c, h, left).contiguous())
        self.register_buffer('right', m.expand(1, c, h, right).contiguous())
        self.register_buffer('top', m.expand(1, c, top, w + left + right).contiguous())
        self.register_buffer('bottom', m.expand(1, c, bottom, w + left + right).contiguous())

    def forward(self, image_u8_nhwc: Tensor) -> Tensor:
        x = image_u8_nhwc
        if self.s2d:
            _, h, w, c = x.shape
            x = x.reshape(1, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(1, h // 2, w // 2, 4 * c)
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        x = torch.cat((self.left, x, self.right), dim=3)
        return torch.cat((self.top, x, self.bottom), dim=2)


PIXEL_PAD_SCOPE = '/pixel_pad/'  # exported node-name prefix of the padding (its output is quantized with scale 1)


def image_input_names(cfg: ActConfig) -> list[str]:
    cams = cfg.camera_names()
    return ['image'] if len(cams) == 1 else [f'image_{c}' for c in cams]


def feature_names(cfg: ActConfig) -> list[str]:
    cams = cfg.camera_names()
    return ['features'] if len(cams) == 1 else [f'features_{c}' for c in cams]
