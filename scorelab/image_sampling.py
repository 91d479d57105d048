"""Sampling images from a score model, sample grids and an animation of digits emerging from noise.

The samplers are those of ``scorelab.sde_samplers`` (they take (N, C, H, W) batches as they take
(N, d) points); this module only adds what images need around them:

- ``sample_images(score_fn, sde, n, shape, sampler=..., ...)``: prior draw from a seed, batches,
  a device, the sampler's own arguments, and the final denoising step (on by default);
- ``ImageRecorder``: a sampler ``callback`` keeping every k-th state of the first few images;
- ``image_grid``, ``show_images``, ``show_panels``: grids of images (matplotlib);
- ``animate_images``: the recorded states as an animation (``scorelab.plotting.to_html`` embeds it).

Images are in model space [-1, 1] and shown through ``scorelab.datasets.to_unit``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import sde_samplers
from ._checks import check_choice, check_count
from .datasets import to_unit
from .sdes import SDE

__all__ = ["SAMPLERS", "sample_images", "ImageRecorder", "image_grid", "show_images", "show_panels",
           "animate_images"]

SAMPLERS = {
    "euler_maruyama": sde_samplers.sample_euler_maruyama,
    "reverse_diffusion": sde_samplers.sample_reverse_diffusion,
    "pc": sde_samplers.sample_pc,
    "probability_flow": sde_samplers.sample_probability_flow,
    "probability_flow_adaptive": sde_samplers.sample_probability_flow_adaptive,
    "heun_karras": sde_samplers.sample_heun_karras,
    "dpm_solver_2": sde_samplers.sample_dpm_solver_2,
}
_STOCHASTIC = {"euler_maruyama", "reverse_diffusion", "pc"}


@torch.no_grad()
def sample_images(score_fn, sde: SDE, n: int, shape, *, sampler: str = "euler_maruyama", seed: int = 0,
                  batch_size: int | None = None, device=None, callback=None, stats: dict | None = None,
                  **kwargs) -> torch.Tensor:
    """Draw ``n`` images (n, C, H, W) with one of ``SAMPLERS``; returned on the CPU in float32.

    The prior sample comes from a CPU generator seeded with ``seed`` (the same ``seed`` gives the
    same starting noise on any device); a stochastic sampler's noise comes from a generator on the
    device seeded with ``seed + 1``.  ``kwargs`` go to the sampler (``n_steps``, ``snr``, ``rtol``, ...).
    ``callback`` sees the first batch only.  ``stats["nfe"]`` is the score evaluations per image
    batch, ``stats["seconds"]`` the wall time.
    """
    import time

    check_choice(sampler, "sampler", sorted(SAMPLERS))
    if not isinstance(sde, SDE):
        raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
    n = check_count(n, "n", 1)
    shape = tuple(shape)
    device = torch.device(device or "cpu")
    batch_size = n if batch_size is None else check_count(batch_size, "batch_size", 1)
    x_all = sde.prior_sampling((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    fn = SAMPLERS[sampler]
    if sampler in _STOCHASTIC:
        kwargs["generator"] = torch.Generator(device).manual_seed(seed + 1)
    out, nfe = [], 0
    start = time.perf_counter()
    for b, x in enumerate(x_all.split(batch_size)):
        st: dict = {}
        out.append(fn(score_fn, x.to(device), sde, callback=callback if b == 0 else None, stats=st,
                      **kwargs).float().cpu())
        nfe = st["nfe"]
    if stats is not None:
        stats.update(nfe=nfe, seconds=time.perf_counter() - start)
    return torch.cat(out)


class ImageRecorder:
    """A sampler ``callback`` that keeps every ``every``-th state of the first ``n_keep`` images.

    ``frames`` is a (T, n_keep, C, H, W) tensor, ``times`` the matching t (the prior at t = T first
    when ``x0`` is given; the final denoising step is recorded as t = 0).
    """

    def __init__(self, every: int = 10, n_keep: int = 16, x0: torch.Tensor | None = None, t0: float = 1.0):
        self.every, self.n_keep = check_count(every, "every", 1), check_count(n_keep, "n_keep", 1)
        self._frames: list[torch.Tensor] = []
        self.times: list[float] = []
        if x0 is not None:
            self._frames.append(x0[: self.n_keep].detach().float().cpu().clone())
            self.times.append(float(t0))

    def __call__(self, info) -> None:
        if (int(info["i"]) + 1) % self.every and not info.get("denoise"):
            return
        self._frames.append(info["x"][: self.n_keep].detach().float().cpu().clone())
        self.times.append(float(info.get("t", float("nan"))))

    @property
    def frames(self) -> torch.Tensor:
        if not self._frames:
            raise ValueError("ImageRecorder: nothing recorded yet (pass it as a sampler's callback=)")
        return torch.stack(self._frames)


def image_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one array (rows * (H + pad), cols * (W + pad)[, 3]) in [0, 1]."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected an (N, C, H, W) tensor of images, got {got}")
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = nrow
    nrows = math.ceil(n / ncol)
    u = to_unit(x.detach().cpu()).numpy()
    grid = np.ones((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for k in range(n):
        r, q = divmod(k, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = u[k]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def show_images(x: torch.Tensor, *, nrow: int | None = None, ax=None, title: str | None = None, figsize=(4.5, 4.5)):
    """Show images (N, C, H, W) in [-1, 1] as one grid (white ink on black for one channel); returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    grid = image_grid(x, nrow)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def show_panels(panels: dict, *, nrow: int | None = None, panel_size: float = 2.6, ncols: int | None = None):
    """One grid per entry of ``panels`` (title -> images), side by side; returns the figure."""
    import matplotlib.pyplot as plt

    k = len(panels)
    ncols = ncols or k
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (title, x) in zip(axes.flat, panels.items(), strict=False):
        show_images(x, nrow=nrow, ax=ax, title=title)
    fig.tight_layout()
    return fig


def animate_images(frames: torch.Tensor, *, times=None, nrow: int | None = None, interval: int = 80,
                   size: float = 4.0, dpi: int = 72):
    """Animate recorded states (T, N, C, H, W) as a grid per frame (a matplotlib ``FuncAnimation``).

    ``times`` (T numbers) label each frame ``t = ...``.  Display with ``scorelab.plotting.to_html``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    if not isinstance(frames, torch.Tensor) or frames.ndim != 5:
        got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames: expected a (T, N, C, H, W) tensor (ImageRecorder.frames), got {got}")
    fig, ax = plt.subplots(figsize=(size, size + 0.3), dpi=dpi)
    grid = image_grid(frames[0], nrow)
    im = ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    title = ax.set_title("", fontsize=10)

    def update(i):
        im.set_data(image_grid(frames[i], nrow))
        if times is not None:
            title.set_text(f"t = {float(times[i]):.3f}")
        return (im,)

    return FuncAnimation(fig, update, frames=frames.shape[0], interval=interval, blit=False)
