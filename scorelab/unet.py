"""Score networks for images: a small noise-conditional U-Net and a flattened MLP (image chapters).

``UNet`` is the architecture of DDPM / score-SDE (Ho et al. 2020; Song et al. 2021, NCSN++)
cut down to laptop size:

- the time ``t`` enters through Gaussian Fourier features (Tancik et al. 2020), computed in
  float32 even under autocast, and a two-layer MLP; every residual block adds its projection;
- residual blocks (GroupNorm, SiLU, 3x3 convolutions), a stride-2 convolution down and a
  nearest-neighbour upsampling up per resolution, skip connections from the way down;
- optional self-attention (one head per 32 channels) at the lowest resolution, between two
  residual blocks;
- the network predicts the noise ``eps`` of ``x_t = alpha(t) x_0 + sigma(t) eps`` from the
  input scaled to unit variance, ``c_in(t) x`` with ``c_in = 1 / sqrt(alpha^2 data_std^2 + sigma^2)``
  (Karras et al. 2022), and the score is ``-eps / sigma(t)``: the output is scaled by ``1 / sigma(t)``
  in float32 (section 4.5.1).  This works for the VE, VP and sub-VP SDEs alike.

``UNet.for_image(sde, shape)`` gives the sizes used in the chapters for 8x8 and 28x28 images.

``FlatScoreNet`` is the same model with the convolutions replaced by residual MLP blocks on
the ``C*H*W`` numbers of an image, for the MLP-against-U-Net comparison.

Shapes: ``net(x, t)`` with x (N, C, H, W) and t a number or an (N,) tensor returns the score (N, C, H, W);
``net.eps(x, t)`` the noise prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_batch, check_count, check_positive, check_seed
from .sdes import SDE, append_dims

__all__ = ["UNet", "FlatScoreNet", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _groups(channels: int, groups: int) -> int:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))  # each block starts as the identity
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, groups: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (n, heads, hw, c / heads)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """Noise-conditional U-Net ``s_theta(x, t) = -eps_theta(c_in(t) x, t) / sigma(t)`` for images.

    Args:
        sde: the forward SDE (its ``alpha`` and ``sigma`` scale the input and the output).
        shape: ``(C, H, W)`` of one image.
        channels: feature channels at the first resolution.
        channel_mult: one multiplier per resolution; each level after the first halves H and W.
        n_res_blocks: residual blocks per resolution on the way down (one more on the way up).
        attention: self-attention at the lowest resolution.
        groups: GroupNorm groups (fewer when the channels do not divide).
        dropout: dropout rate inside the residual blocks.
        n_fourier: Gaussian Fourier frequencies of ``t`` (the embedding has ``2 n_fourier`` features).
        fourier_scale: standard deviation of those frequencies (``t`` lies in [0, T]).
        data_std: the data's standard deviation, for ``c_in``.
        seed: int for reproducible initial weights (the global random state is left alone).
    """

    def __init__(self, sde: SDE, shape, *, channels: int = 32, channel_mult=(1, 2, 2), n_res_blocks: int = 1,
                 attention: bool = True, groups: int = 8, dropout: float = 0.0, n_fourier: int = 32,
                 fourier_scale: float = 16.0, data_std: float = 0.5, seed: int | None = None):
        super().__init__()
        if not isinstance(sde, SDE):
            raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
        shape = tuple(shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape: expected (C, H, W) of positive ints, got {shape!r}")
        channels = check_count(channels, "channels", 1)
        n_res_blocks = check_count(n_res_blocks, "n_res_blocks", 1)
        mult = tuple(channel_mult)
        if not mult or not all(isinstance(m, int) and m > 0 for m in mult):
            raise ValueError(f"channel_mult: expected a non-empty tuple of positive ints, got {channel_mult!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {dropout!r}")
        self.sde, self.shape = sde, shape
        self.data_std = check_positive(data_std, "data_std")
        fourier_scale = check_positive(fourier_scale, "fourier_scale")
        self.config = dict(channels=channels, channel_mult=mult, n_res_blocks=n_res_blocks, attention=attention,
                           groups=groups, dropout=dropout, n_fourier=n_fourier, fourier_scale=fourier_scale,
                           data_std=self.data_std)
        gen = torch.random.fork_rng(devices=[])
        with gen:
            if seed is not None:
                torch.manual_seed(check_seed(seed))
            self._build(shape[0], channels, mult, n_res_blocks, attention, groups, dropout, n_fourier,
                        fourier_scale)

    def _build(self, c_img, ch, mult, n_res, attention, groups, dropout, n_fourier, fourier_scale):
        emb_dim = 4 * ch
        self.register_buffer("freqs", torch.randn(n_fourier) * fourier_scale)
        self.time_mlp = nn.Sequential(nn.Linear(2 * n_fourier, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(c_img, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch]
        c = ch
        for level, m in enumerate(mult):
            for _ in range(n_res):
                self.down.append(_ResBlock(c, ch * m, emb_dim, groups, dropout))
                c = ch * m
                skips.append(c)
            if level < len(mult) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = _ResBlock(c, c, emb_dim, groups, dropout)
        self.mid_attn = _Attention(c, groups) if attention else nn.Identity()
        self.mid2 = _ResBlock(c, c, emb_dim, groups, dropout)
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for _ in range(n_res + 1):
                self.up.append(_ResBlock(c + skips.pop(), ch * m, emb_dim, groups, dropout))
                c = ch * m
            if level > 0:
                self.up.append(nn.Conv2d(c, c, 3, padding=1))  # after a nearest-neighbour upsampling
        self.norm_out = nn.GroupNorm(_groups(c, groups), c)
        self.conv_out = _zero(nn.Conv2d(c, c_img, 3, padding=1))

    @classmethod
    def for_image(cls, sde: SDE, shape, *, seed: int | None = None, **overrides) -> UNet:
        """The chapters' sizes: 8x8 images get two resolutions (8, 4) of 32 and 64 channels; 28x28
        images three (28, 14, 7) of 32, 64, 64 channels; attention at the lowest in both."""
        c, h, w = tuple(shape)
        if max(h, w) <= 16:
            kw = dict(channels=32, channel_mult=(1, 2), n_res_blocks=1)
        else:
            kw = dict(channels=32, channel_mult=(1, 2, 2), n_res_blocks=1)
        kw.update(overrides)
        return cls(sde, shape, seed=seed, **kw)

    def _inputs(self, x, t):
        x = check_batch(x, images=True)
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x: expected images of shape (N, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        return x, self.sde._time(t, x)

    def _embed(self, t: torch.Tensor) -> torch.Tensor:
        # in float32 whatever autocast says: sin and cos of large angles need the precision
        with torch.autocast(device_type=t.device.type, enabled=False):
            angles = (2 * math.pi) * t.float()[:, None] * self.freqs.float()
            return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        """Noise prediction ``eps_theta(x, t)``: (N, C, H, W), (N,) -> (N, C, H, W)."""
        x, t = self._inputs(x, t)
        return self._eps(x, t)

    def _eps(self, x, t):
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        c_in = torch.rsqrt(a * a * self.data_std**2 + s * s)
        emb = self.time_mlp(self._embed(t))
        h = self.conv_in(x * append_dims(c_in, x.ndim))
        hs = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, _ResBlock) else block(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block in self.up:
            if isinstance(block, _ResBlock):
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = block(F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        x, t = self._inputs(x, t)
        eps = self._eps(x, t)
        # the division by sigma(t) in float32 (under bf16 autocast eps comes out in bf16)
        return -eps.float() / append_dims(self.sde.sigma(t).float(), x.ndim)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, sde={self.sde!r}, " + ", ".join(f"{k}={v}" for k, v in self.config.items())


class _MLPBlock(nn.Module):
    def __init__(self, width: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.emb = nn.Linear(emb_dim, 2 * width)
        self.drop = nn.Dropout(dropout)
        self.fc2 = _zero(nn.Linear(2 * width, width))

    def forward(self, h, emb):
        return h + self.fc2(self.drop(F.silu(self.fc1(self.norm(h)) + self.emb(emb))))


class FlatScoreNet(nn.Module):
    """An MLP score model for images: the ``C*H*W`` numbers of an image through residual MLP blocks.

    Same conditioning and parametrisation as ``UNet`` (Fourier features of t added in every
    block, input scaled by ``c_in(t)``, noise prediction divided by ``sigma(t)``), but no notion of
    neighbouring pixels: every pixel talks to every other through dense layers.  A time-dependent
    per-pixel gain on the input is added to the output, so the identity part of the noise
    prediction does not have to squeeze through the ``width``-wide residual stream.

    Args:
        sde: the forward SDE.
        shape: ``(C, H, W)`` of one image.
        width: width of the residual stream (each block widens to ``2 width`` inside).
        depth: number of residual blocks.
        dropout, n_fourier, fourier_scale, data_std, seed: as for ``UNet``.
    """

    def __init__(self, sde: SDE, shape, *, width: int = 256, depth: int = 4, dropout: float = 0.0,
                 n_fourier: int = 32, fourier_scale: float = 16.0, data_std: float = 0.5, seed: int | None = None):
        super().__init__()
        if not isinstance(sde, SDE):
            raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
        shape = tuple(shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"shape: expected (C, H, W) of positive ints, got {shape!r}")
        width, depth = check_count(width, "width", 1), check_count(depth, "depth", 1)
        self.sde, self.shape = sde, shape
        self.data_std = check_positive(data_std, "data_std")
        fourier_scale = check_positive(fourier_scale, "fourier_scale")
        self.config = dict(width=width, depth=depth, dropout=dropout, n_fourier=n_fourier,
                           fourier_scale=fourier_scale, data_std=self.data_std)
        dim = math.prod(shape)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(check_seed(seed))
            self.register_buffer("freqs", torch.randn(n_fourier) * fourier_scale)
            self.time_mlp = nn.Sequential(nn.Linear(2 * n_fourier, width), nn.SiLU(), nn.Linear(width, width))
            self.inp = nn.Linear(dim, width)
            self.blocks = nn.ModuleList(_MLPBlock(width, width, dropout) for _ in range(depth))
            self.norm_out = nn.LayerNorm(width)
            self.out = _zero(nn.Linear(width, dim))
            # a per-pixel gain on the input set by t: the identity part of eps (at high noise eps is
            # nearly the scaled input), which a width-limited MLP cannot pass through its bottleneck
            self.skip = _zero(nn.Linear(width, dim))

    _inputs = UNet._inputs
    _embed = UNet._embed

    def _eps(self, x, t):
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        c_in = torch.rsqrt(a * a * self.data_std**2 + s * s)
        emb = self.time_mlp(self._embed(t))
        x_in = x.reshape(x.shape[0], -1) * c_in[:, None]
        h = self.inp(x_in)
        for block in self.blocks:
            h = block(h, emb)
        return (self.out(F.silu(self.norm_out(h))) + self.skip(emb) * x_in).reshape(x.shape)

    eps = UNet.eps
    forward = UNet.forward

    def extra_repr(self) -> str:
        return f"shape={self.shape}, sde={self.sde!r}, " + ", ".join(f"{k}={v}" for k, v in self.config.items())
