"""A small time-conditional score network for the score SDE (section 4.5).

``TimeConditionalScoreNet``: ``s_theta(x, t)`` for 2-D toys.  The MLP predicts the noise
``eps`` (DDPM's parametrisation) and the score is ``-eps_hat / sigma(t)``, the identity of
section 4.5.1; its input is scaled by ``c_in(t) = 1 / sqrt(alpha(t)^2 data_std^2 + sigma(t)^2)``
so it has unit scale at every t (Karras et al. 2022), which matters for the VE SDE whose
samples grow to ``sigma_max``.  It trains with ``scorelab.losses.sde_score_matching_loss``,
which for this eps-parametrised net *is* DDPM's loss ``E|eps - eps_theta(x_t, t)|^2 / 2``.

``scorelab.nets`` holds the networks of 4.2-4.3 and the MLP this one is built from; this
module adds only what the continuous-time view needs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_batch, check_count, check_positive, check_type
from .nets import mlp, seeded
from .sdes import SDE

__all__ = ["TimeConditionalScoreNet"]


class TimeConditionalScoreNet(nn.Module):
    """Time-conditional score ``s_theta(x, t) = -eps_theta(c_in x, emb(t)) / sigma(t)`` (section 4.5).

    ``emb(t)`` is ``[sin(2 pi w t), cos(2 pi w t)]`` with fixed random frequencies
    ``w ~ N(0, fourier_scale^2)`` (Gaussian Fourier features, Tancik et al. 2020, as in the
    score-SDE code).  The MLP (``scorelab.nets.mlp``) has ``depth`` SiLU layers of width ``hidden``.

    Args:
        sde: the forward SDE whose ``alpha``, ``sigma`` scale the input and output.
        dim: data dimension d.
        hidden, depth: MLP width and number of hidden layers.
        n_fourier: number of frequencies (the embedding has ``2 n_fourier`` features).
        fourier_scale: standard deviation of the frequencies.
        data_std: rough standard deviation of the data, for ``c_in``.
        seed: int for reproducible weights and frequencies (global RNG untouched), or None.

    Call: ``net(x, t)`` with x (N, d) and t a number or (N,) tensor -> (N, d) score;
    ``net.eps(x, t)`` gives the raw noise prediction.
    """

    def __init__(self, sde: SDE, dim: int, hidden: int = 128, depth: int = 3, n_fourier: int = 16,
                 fourier_scale: float = 4.0, data_std: float = 1.0, seed: int | None = None):
        super().__init__()
        check_type(sde, SDE, "sde", "a scorelab SDE (VESDE, VPSDE, SubVPSDE)")
        for name, v in (("dim", dim), ("hidden", hidden), ("depth", depth), ("n_fourier", n_fourier)):
            check_count(v, name, minimum=1)
        self.sde, self.dim = sde, dim
        self.data_std = check_positive(data_std, "data_std")
        fourier_scale = check_positive(fourier_scale, "fourier_scale")
        with seeded(seed):
            self.register_buffer("freqs", torch.randn(n_fourier) * fourier_scale)
            self.net = mlp(dim + 2 * n_fourier, dim, hidden, depth)

    def _t(self, x: torch.Tensor, t) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (N, {self.dim}), got {tuple(x.shape)}")
        return self.sde._time(t, x)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        """Noise prediction ``eps_theta(x, t)``: (N, d), (N,) -> (N, d)."""
        x = check_batch(x, images=True)
        t = self._t(x, t)
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        c_in = torch.rsqrt(a * a * self.data_std**2 + s * s)
        angles = (2 * math.pi) * t[:, None] * self.freqs.to(x.dtype)
        h = torch.cat([x * c_in[:, None], torch.sin(angles), torch.cos(angles)], dim=-1)
        return self.net(h)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        x = check_batch(x, images=True)
        t = self._t(x, t)
        return -self.eps(x, t) / self.sde.sigma(t)[:, None]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, sde={self.sde!r}, data_std={self.data_std}"
