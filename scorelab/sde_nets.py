"""A small time-conditional score network and its training loss for the score SDE (section 4.5).

- ``TimeConditionalScoreNet``: ``s_theta(x, t)`` for 2-D toys.  The MLP predicts the noise
  ``eps`` (DDPM's parametrisation) and the score is ``-eps_hat / sigma(t)``, the identity of
  section 4.5.1; its input is scaled by ``c_in(t) = 1 / sqrt(alpha(t)^2 data_std^2 + sigma(t)^2)``
  so it has unit scale at every t (Karras et al. 2022), which matters for the VE SDE whose
  samples grow to ``sigma_max``.
- ``sde_score_matching_loss``: denoising score matching on the SDE, Song et al. (2021) eq. 7,
  with weight ``lambda(t) = sigma(t)^2``; for the eps-parametrised net it *is* DDPM's loss
  ``E|eps - eps_theta(x_t, t)|^2 / 2``.

Engineer B's ``scorelab.nets`` holds the noise-conditional networks of 4.2-4.3; this module
adds only what the continuous-time view needs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_generator, check_positive
from .sdes import SDE, _check_x, append_dims

__all__ = ["TimeConditionalScoreNet", "sde_score_matching_loss"]


class TimeConditionalScoreNet(nn.Module):
    """Time-conditional score ``s_theta(x, t) = -eps_theta(c_in x, emb(t)) / sigma(t)`` (section 4.5).

    ``emb(t)`` is ``[sin(2 pi w t), cos(2 pi w t)]`` with fixed random frequencies
    ``w ~ N(0, fourier_scale^2)`` (Gaussian Fourier features, Tancik et al. 2020, as in the
    score-SDE code).  The MLP has ``depth`` SiLU layers of width ``hidden``.

    Args:
        sde: the forward SDE whose ``alpha``, ``sigma`` scale the input and output.
        dim: data dimension d.
        hidden, depth: MLP width and number of hidden layers.
        n_fourier: number of frequencies (the embedding has ``2 n_fourier`` features).
        fourier_scale: standard deviation of the frequencies.
        data_std: rough standard deviation of the data, for ``c_in``.
        seed: int for reproducible weights and frequencies (global RNG untouched).

    Call: ``net(x, t)`` with x (N, d) and t a number or (N,) tensor -> (N, d) score;
    ``net.eps(x, t)`` gives the raw noise prediction.
    """

    def __init__(self, sde: SDE, dim: int, hidden: int = 128, depth: int = 3, n_fourier: int = 16,
                 fourier_scale: float = 4.0, data_std: float = 1.0, seed: int | None = None):
        super().__init__()
        if not isinstance(sde, SDE):
            raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
        for name, v in (("dim", dim), ("hidden", hidden), ("depth", depth), ("n_fourier", n_fourier)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.sde, self.dim = sde, dim
        self.data_std = check_positive(data_std, "data_std")
        fourier_scale = check_positive(fourier_scale, "fourier_scale")
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                if isinstance(seed, bool) or not isinstance(seed, int):
                    raise TypeError(f"seed: expected None or an int, got {type(seed).__name__}")
                torch.manual_seed(seed)
            self.register_buffer("freqs", torch.randn(n_fourier) * fourier_scale)
            layers: list[nn.Module] = []
            width = dim + 2 * n_fourier
            for _ in range(depth):
                layers += [nn.Linear(width, hidden), nn.SiLU()]
                width = hidden
            layers.append(nn.Linear(width, dim))
            self.net = nn.Sequential(*layers)

    def _t(self, x: torch.Tensor, t) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (N, {self.dim}), got {tuple(x.shape)}")
        return self.sde._time(t, x)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        """Noise prediction ``eps_theta(x, t)``: (N, d), (N,) -> (N, d)."""
        x = _check_x(x)
        t = self._t(x, t)
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        c_in = torch.rsqrt(a * a * self.data_std**2 + s * s)
        angles = (2 * math.pi) * t[:, None] * self.freqs.to(x.dtype)
        h = torch.cat([x * c_in[:, None], torch.sin(angles), torch.cos(angles)], dim=-1)
        return self.net(h)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        x = _check_x(x)
        t = self._t(x, t)
        return -self.eps(x, t) / self.sde.sigma(t)[:, None]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, sde={self.sde!r}, data_std={self.data_std}"


def sde_score_matching_loss(score_fn, x0: torch.Tensor, sde: SDE, *, t_eps: float = 1e-5,
                            generator=None, t=None, eps=None) -> torch.Tensor:
    """Denoising score matching over all times, Song et al. (2021) eq. 7 with ``lambda = sigma^2`` (4.5.1).

    Draw ``t ~ U(t_eps, T)`` per example and ``x_t = alpha(t) x0 + sigma(t) eps``; the target
    ``-eps / sigma(t)`` is the score of ``p_0t(x_t | x0)``, and the loss is::

        1/2 E |sigma(t) s(x_t, t) + eps|^2

    whose minimiser over all functions is the exact score of ``p_t`` at every t.  With
    ``s = -eps_theta / sigma`` this is DDPM's ``1/2 E |eps - eps_theta|^2``.

    Args:
        score_fn: ``(x (N, ...), t (N,)) -> shaped like x``, differentiable in its parameters.
        x0: (N, ...) clean data.
        sde: the forward SDE.
        t_eps: smallest time drawn (the score is singular at t = 0 for point data).
        generator: ``torch.Generator`` or int seed for t and the noise.
        t, eps: optional pre-drawn times (N,) in ``[t_eps, T]`` and noise shaped like x0, used instead
            of drawing them (both or neither); a data-parallel run draws them for the whole batch
            and gives each process its share, so that it computes the same loss as one process.

    Returns:
        A scalar tensor (batch mean).
    """
    if not callable(score_fn):
        raise TypeError("score_fn: expected a callable (x (N, ...), t (N,)) -> tensor shaped like x")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
    x0 = _check_x(x0, "x0")
    t_eps = check_positive(t_eps, "t_eps")
    if not t_eps < sde.T:
        raise ValueError(f"t_eps: expected 0 < t_eps < T = {sde.T}, got {t_eps}")
    if (t is None) != (eps is None):
        raise ValueError("t, eps: expected both (pre-drawn times and noise) or neither")
    if t is None:
        g = check_generator(generator)
        t = t_eps + (sde.T - t_eps) * torch.rand(x0.shape[0], generator=g, dtype=x0.dtype, device=x0.device)
        x_t, eps = sde.perturb(x0, t, generator=g)
    else:
        if not isinstance(eps, torch.Tensor) or eps.shape != x0.shape:
            got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
            raise ValueError(f"eps: expected a tensor of shape {tuple(x0.shape)} (same as x0), got {got}")
        mean, std = sde.marginal_prob(x0, t)
        x_t = mean + append_dims(std, x0.ndim) * eps
    s = score_fn(x_t, t)
    if not isinstance(s, torch.Tensor) or s.shape != x0.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score_fn: expected an output of shape {tuple(x0.shape)}, got {got}")
    resid = append_dims(sde.sigma(t), x0.ndim) * s + eps
    return 0.5 * resid.reshape(x0.shape[0], -1).pow(2).sum(-1).mean()
