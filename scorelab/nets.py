"""Small score networks for 2-D toys and moderate dimensions (sections 4.2–4.3).

- ``MLPScore``: an unconstrained vector field ``s_theta(x)``, an MLP with SiLU activations
  (section 4.2: the model that ESM, DSM and SSM train).
- ``NoiseConditionalScoreNet``: ``s_theta(x, sigma)`` for NCSN (section 4.3.3), with four ways to
  tell the network the noise level: ``"log_sigma"`` (log sigma as an extra input),
  ``"fourier"`` (random Fourier features of log sigma, Tancik et al. 2020 / Song et al. 2021),
  ``"embedding"`` (a learned ``torch.nn.Embedding`` vector per level of the schedule) and
  ``"divide"`` (an unconditional network divided by sigma, NCSNv2, Song & Ermon 2020).
- ``EnergyScoreNet``: a scalar energy ``E_theta(x)`` whose score ``-grad_x E_theta`` is a
  conservative field by construction (its Jacobian is a Hessian, hence symmetric).

Every constructor takes ``seed``: with an int, the initial weights (and the Fourier
frequencies) are drawn from ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``, so
construction is reproducible and leaves the global random state untouched.

Shapes: ``x`` is ``(N, dim)``; ``sigma`` is a number, a 0-d tensor or an ``(N,)`` tensor; the
score is ``(N, dim)``; ``EnergyScoreNet.energy`` is ``(N,)``.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from ._checks import (
    as_points,
    check_bool,
    check_choice,
    check_count,
    check_levels,
    check_positive,
    check_positive_values,
    check_seed,
    per_example,
)

__all__ = ["MLPScore", "NoiseConditionalScoreNet", "EnergyScoreNet", "mlp", "seeded"]

CONDITIONINGS = ("log_sigma", "fourier", "embedding", "divide")


# -- helpers --------------------------------------------------------------------

@contextlib.contextmanager
def seeded(seed):
    """Run the body (a network's construction) with ``torch.manual_seed(seed)`` inside
    ``torch.random.fork_rng``, so the initial weights are reproducible and the global random
    state is left untouched; ``seed=None`` draws from the global state as usual."""
    if check_seed(seed) is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def mlp(d_in: int, d_out: int, hidden: int = 128, depth: int = 3, *, batch_norm: bool = False) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with SiLU, then a linear read-out: (N, d_in) -> (N, d_out).

    With ``batch_norm=True`` each hidden ``Linear`` is followed by ``nn.BatchNorm1d(hidden)``
    (Ioffe & Szegedy, 2015) before the SiLU.  The Linear layers are created in the same order
    either way, so one seed gives them the same initial weights with and without BatchNorm.
    """
    d_in, d_out = check_count(d_in, "d_in", 1), check_count(d_out, "d_out", 1)
    hidden, depth = check_count(hidden, "hidden", 1), check_count(depth, "depth", 1)
    check_bool(batch_norm, "batch_norm")
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.SiLU())
        width = hidden
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


def _sigma_per_example(sigma, x: torch.Tensor) -> torch.Tensor:
    """Noise levels (a number, one-element, (N,) or (N, 1) tensor) as a positive (N,) tensor like x."""
    return check_positive_values(per_example(sigma, x, "sigma"), "sigma", "noise levels")


# -- section 4.2: the unconstrained field --------------------------------------

class MLPScore(nn.Module):
    """Unconditional score network ``s_theta(x)``: an MLP with SiLU activations (section 4.2).

    Args:
        dim: data dimension d.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        seed: int for reproducible initial weights (global RNG untouched), or None.
        batch_norm: insert ``nn.BatchNorm1d`` after every hidden Linear (default False, the plain
            MLP).  In train mode the output for one point then depends on the other points of
            the batch (batch statistics); call ``net.eval()`` before sampling so the running
            statistics are used instead (principles text, "network architecture").

    Call: ``net(x)`` with x (N, dim) -> (N, dim).  The output is an arbitrary vector field:
    nothing forces it to be a gradient.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, seed: int | None = None, *,
                 batch_norm: bool = False):
        super().__init__()
        self.dim = check_count(dim, "dim", 1)
        self.batch_norm = batch_norm
        with seeded(seed):
            self.net = mlp(dim, dim, hidden, depth, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(as_points(x, self.dim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}" + (", batch_norm=True" if self.batch_norm else "")


# -- section 4.3.3: telling the network the noise level ------------------------

class NoiseConditionalScoreNet(nn.Module):
    """Noise-conditional score network ``s_theta(x, sigma)`` for NCSN (section 4.3.3).

    ``conditioning`` picks how sigma enters:

    - ``"log_sigma"``: ``[x, c]`` with ``c = log sigma`` standardised by the schedule's range
      (mean and half-width of ``log sigmas``), so the extra input is in about [-1, 1].
    - ``"fourier"``: ``[x, sin(2 pi w c), cos(2 pi w c)]`` with ``n_fourier`` fixed frequencies
      ``w ~ N(0, fourier_scale^2)`` (Gaussian Fourier features, as in the NCSN++ time
      embedding of Song et al. 2021).
    - ``"embedding"``: ``[x, e_k]`` where ``e_k`` is row ``k`` of a learned
      ``torch.nn.Embedding(L, embed_dim)`` and ``k`` is the index of sigma in ``sigmas``;
      a sigma that is not in the schedule (relative tolerance 1e-4) raises ``ValueError``.
    - ``"divide"``: ``s_theta(x) / sigma`` with an unconditional MLP (NCSNv2, Song & Ermon 2020),
      which matches the ``1/sigma`` size of noised scores for free.

    Args:
        dim: data dimension d.
        sigmas: (L,) noise schedule (also used to standardise log sigma).
        conditioning: one of ``"log_sigma"``, ``"fourier"``, ``"embedding"``, ``"divide"``.
        hidden, depth: MLP width and number of hidden layers.
        seed: int for reproducible initial weights (global RNG untouched), or None.
        n_fourier: number of Fourier frequencies (feature size ``2 * n_fourier``).
        fourier_scale: standard deviation of the Fourier frequencies.
        embed_dim: size of the learned embedding vectors.

    Call: ``net(x, sigma)`` with x (N, dim) and sigma a number or an (N,) tensor -> (N, dim).
    """

    def __init__(self, dim: int, sigmas, conditioning: str = "log_sigma", hidden: int = 128,
                 depth: int = 3, seed: int | None = None, *, n_fourier: int = 16,
                 fourier_scale: float = 1.0, embed_dim: int = 32):
        super().__init__()
        self.dim = check_count(dim, "dim", 1)
        self.conditioning = check_choice(conditioning, "conditioning", CONDITIONINGS)
        s = check_levels(sigmas, "sigmas", dtype=torch.float64)
        if conditioning == "embedding" and torch.unique(s).numel() != s.numel():
            raise ValueError(f"sigmas: the embedding conditioning needs distinct noise levels, got {s.tolist()}")
        self.register_buffer("sigmas", s.to(torch.get_default_dtype()))
        log_s = torch.log(s)
        center = float((log_s.max() + log_s.min()) / 2)
        half_width = float((log_s.max() - log_s.min()) / 2)
        self._log_center, self._log_scale = center, (half_width if half_width > 0 else 1.0)
        with seeded(seed):
            if conditioning == "log_sigma":
                c_dim = 1
            elif conditioning == "fourier":
                check_count(n_fourier, "n_fourier", 1)
                fourier_scale = check_positive(fourier_scale, "fourier_scale")
                self.register_buffer("fourier_w", torch.randn(n_fourier) * fourier_scale)
                c_dim = 2 * n_fourier
            elif conditioning == "embedding":
                self.embedding = nn.Embedding(s.numel(), check_count(embed_dim, "embed_dim", 1))
                c_dim = embed_dim
            else:
                c_dim = 0
            self.net = mlp(dim + c_dim, dim, hidden, depth)

    def sigma_index(self, sigma: torch.Tensor) -> torch.Tensor:
        """Index in ``sigmas`` of each entry of ``sigma`` (N,) -> (N,) long; ValueError if absent."""
        ref = self.sigmas.to(sigma.dtype)
        rel = (sigma[:, None] - ref[None, :]).abs() / ref[None, :]
        best, idx = rel.min(dim=1)
        if bool((best > 1e-4).any()):
            bad = sigma[best > 1e-4].unique()[:5].tolist()
            raise ValueError(
                f"sigma: the embedding conditioning only knows the schedule's levels {self.sigmas.tolist()}, "
                f"got {bad}"
            )
        return idx

    def _features(self, sigma: torch.Tensor) -> torch.Tensor:
        c = (torch.log(sigma) - self._log_center) / self._log_scale
        if self.conditioning == "log_sigma":
            return c[:, None]
        if self.conditioning == "fourier":
            angle = 2 * math.pi * c[:, None] * self.fourier_w.to(c.dtype)[None, :]
            return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)
        return self.embedding(self.sigma_index(sigma))

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        x = as_points(x, self.dim)
        s = _sigma_per_example(sigma, x)
        if self.conditioning == "divide":
            return self.net(x) / s[:, None]
        return self.net(torch.cat([x, self._features(s).to(x.dtype)], dim=-1))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, conditioning={self.conditioning!r}, n_sigmas={self.sigmas.numel()}"


# -- a conservative field -------------------------------------------------------

class EnergyScoreNet(nn.Module):
    """Score as minus the gradient of a learned scalar energy, ``s = -grad_x E_theta`` (4.1.2, 4.2).

    The energy is an MLP ``R^dim -> R`` (with a standardised ``log sigma`` as an extra input
    when ``noise_conditional=True``).  Its score is a gradient field, so its Jacobian
    ``-Hessian(E)`` is symmetric and the field has no curl, unlike ``MLPScore``.  The gradient
    is taken with ``create_graph=True`` when the module is in training mode or ``x`` requires
    grad (so losses can differentiate through it), and detached otherwise (cheap sampling).

    Args:
        dim: data dimension d.
        hidden, depth: MLP width and number of hidden layers.
        noise_conditional: energy ``E(x, sigma)``; the call becomes ``net(x, sigma)``.
        sigmas: optional (L,) schedule, used only to standardise ``log sigma``.
        seed: int for reproducible initial weights (global RNG untouched), or None.

    Call: ``net(x)`` (or ``net(x, sigma)``) with x (N, dim) -> score (N, dim);
    ``net.energy(x[, sigma])`` -> (N,).
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, noise_conditional: bool = False,
                 sigmas=None, seed: int | None = None):
        super().__init__()
        self.dim = check_count(dim, "dim", 1)
        self.noise_conditional = bool(noise_conditional)
        self._log_center, self._log_scale = 0.0, 1.0
        if sigmas is not None:
            log_s = torch.log(check_levels(sigmas, "sigmas", dtype=torch.float64))
            self._log_center = float((log_s.max() + log_s.min()) / 2)
            half_width = float((log_s.max() - log_s.min()) / 2)
            self._log_scale = half_width if half_width > 0 else 1.0
        with seeded(seed):
            self.net = mlp(dim + int(self.noise_conditional), 1, hidden, depth)

    def energy(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Scalar energy ``E_theta(x[, sigma])``: (N, dim) -> (N,)."""
        x = as_points(x, self.dim)
        if self.noise_conditional:
            if sigma is None:
                raise TypeError("sigma: this EnergyScoreNet is noise-conditional; call it as net(x, sigma)")
            s = _sigma_per_example(sigma, x)
            c = (torch.log(s) - self._log_center) / self._log_scale
            x = torch.cat([x, c[:, None]], dim=-1)
        elif sigma is not None:
            raise TypeError("sigma: this EnergyScoreNet is unconditional; call it as net(x)")
        return self.net(x).squeeze(-1)

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        x = as_points(x, self.dim)
        create_graph = self.training or x.requires_grad
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(xg, sigma).sum(), xg, create_graph=create_graph)
        return -grad

    def extra_repr(self) -> str:
        return f"dim={self.dim}, noise_conditional={self.noise_conditional}"
