"""Static figures: densities, score fields, particles and their paths (every chapter, from 4.1).

Part of ``scorelab.plotting`` (see its docstring for the conventions); also holds the book's
colours and matplotlib style.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from .._checks import check_callable, check_choice, check_count, check_limits, check_output, check_type
from ..distributions import Distribution, EnergyModel
from .recorder import TrajectoryRecorder

__all__ = [
    "DENSITY_CMAP",
    "CONTOUR_CMAP",
    "MAGNITUDE_CMAP",
    "PARTICLE_COLOR",
    "FIELD_COLOR",
    "use_style",
    "grid",
    "plot_density",
    "plot_density_1d",
    "plot_score_field",
    "plot_particles",
    "plot_paths",
]


def _truncated(name: str, base: str, lo: float, hi: float):
    """Register (once) and return the part [lo, hi] of a matplotlib colormap under a new name."""
    from matplotlib.colors import LinearSegmentedColormap

    if name not in mpl.colormaps:
        colors = mpl.colormaps[base](np.linspace(lo, hi, 256))
        mpl.colormaps.register(LinearSegmentedColormap.from_list(name, colors))
    return name


# White where there is no mass, mid blue at the peak (not navy), so arrows, contours and
# orange particles stay visible on top of a density.
DENSITY_CMAP = _truncated("scorelab_density", "Blues", 0.0, 0.8)
CONTOUR_CMAP = _truncated("scorelab_contour", "Blues", 0.35, 1.0)  # lines: no near-white levels
# Arrow and streamline colour = |s(x)|: orange for gentle pulls, near black for strong ones;
# both ends read on white and on blue.
MAGNITUDE_CMAP = _truncated("scorelab_magnitude", "magma_r", 0.2, 0.95)
PARTICLE_COLOR = "#e8590c"  # one orange for every particle plot in the book
FIELD_COLOR = "#343a40"  # plain arrows and streamlines
SCORE_COLOR = "#c92a2a"  # the 1-D score curve
EMBED_LIMIT_MB = 64.0  # inline animations of a few hundred small frames fit comfortably

_STYLE = {
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "image.cmap": DENSITY_CMAP,
    "lines.linewidth": 2.0,
    "scatter.marker": "o",
    "animation.embed_limit": EMBED_LIMIT_MB,
    "animation.html": "jshtml",
}


def use_style() -> None:
    """Set the book's matplotlib defaults (large figures, readable fonts, no top/right spines).

    Figures default to 8 x 4.5 inches (one idea per slide, CONTRIBUTING.md); densities use
    ``DENSITY_CMAP``, particles ``PARTICLE_COLOR``.  Also raises the inline animation size limit
    (``animation.embed_limit``) to ``EMBED_LIMIT_MB`` megabytes.
    """
    mpl.rcParams.update(_STYLE)


# -- inputs ------------------------------------------------------------------------

def _as_numpy_points(x, name: str = "x", dim: int = 2) -> np.ndarray:
    """A (N, dim) tensor or array -> float numpy array, with a clear error otherwise."""
    check_type(x, (torch.Tensor, np.ndarray), name, f"a torch.Tensor or numpy array of shape (N, {dim})")
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x.astype(float)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (N, {dim}), got {tuple(arr.shape)}")
    return arr


def as_trajectory(trajectory, name: str = "trajectory") -> np.ndarray:
    """A (T, N, 2) tensor/array or a TrajectoryRecorder -> float numpy array (T, N, 2) (figures and animations)."""
    if isinstance(trajectory, TrajectoryRecorder):
        trajectory = trajectory.trajectory
    if isinstance(trajectory, torch.Tensor):
        arr = trajectory.detach().cpu().double().numpy()
    elif isinstance(trajectory, np.ndarray):
        arr = trajectory.astype(float)
    else:
        raise TypeError(
            f"{name}: expected a (T, N, 2) tensor or array, or a TrajectoryRecorder, got {type(trajectory).__name__}"
        )
    if arr.ndim != 3 or arr.shape[-1] != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (T, N, 2) with T >= 1 and N >= 1, got {tuple(arr.shape)}")
    return arr


def log_density_fn(target):
    """Return ``(f, normalised)``: f maps (N, d) points to (N,) log-densities."""
    if isinstance(target, EnergyModel):
        return target.unnormalized_log_prob, False
    if isinstance(target, Distribution):
        return target.log_prob, True
    if callable(target):
        return target, False
    raise TypeError(
        "target: expected a scorelab Distribution or a callable mapping (N, d) points to (N,) log-densities, "
        f"got {type(target).__name__}"
    )


def eval_log_density(f, pts: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = check_output(f(pts), (pts.shape[0],), "target", " (a log-density maps (N, d) points to (N,) values)")
    return out.detach().cpu().double().numpy()


def _eval_score(score_fn, pts: torch.Tensor) -> np.ndarray:
    check_callable(score_fn, "score_fn", "mapping (N, d) points to (N, d) scores")
    out = check_output(score_fn(pts), pts.shape, "score_fn", " (same as its input)")
    return out.detach().cpu().double().numpy()


def _axes(ax, figsize=(6.0, 6.0)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def grid(lims=(-6, 6), n: int = 200, *, dtype: torch.dtype | None = None):
    """A regular n x n grid over ``lims``.

    Returns:
        ``(X, Y, points)``: X and Y are (n, n) tensors in ``meshgrid(indexing="xy")``
        layout (row = y, column = x, as ``imshow``/``contour``/``streamplot`` expect), and
        ``points`` is the (n * n, 2) tensor of the same points, row-major, so any
        ``f(points).reshape(n, n)`` lines up with X and Y.
    """
    (x0, x1), (y0, y1) = check_limits(lims, axes=2)
    n = check_count(n, "n", minimum=2)
    dtype = dtype or torch.get_default_dtype()
    xs = torch.linspace(x0, x1, n, dtype=dtype)
    ys = torch.linspace(y0, y1, n, dtype=dtype)
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    return X, Y, torch.stack([X.reshape(-1), Y.reshape(-1)], -1)


def plot_density(target, *, ax=None, lims=(-6, 6), n: int = 200, kind: str = "heatmap", cmap=None,
                 levels: int = 10, colorbar: bool = False, alpha: float = 1.0):
    """Draw a 2-D density ``p(x)`` on an n x n grid (section 4.1.1).

    Args:
        target: a 2-D ``Distribution`` (uses ``log_prob``; an ``EnergyModel`` uses
            ``unnormalized_log_prob``, so the picture is ``exp(-E)`` scaled to peak 1), or a
            callable mapping (N, 2) points to (N,) log-densities (also scaled to peak 1).
        kind: ``"heatmap"`` (``imshow``), ``"contour"`` (lines) or ``"contourf"`` (filled).
        levels: number of contour levels.

    Returns:
        the matplotlib Axes (square aspect, limits set to ``lims``).
    """
    check_choice(kind, "kind", ("heatmap", "contour", "contourf"))
    f, normalised = log_density_fn(target)
    if getattr(target, "dim", 2) != 2:
        raise ValueError(f"target: plot_density draws 2-D densities, got dim={target.dim} (use plot_density_1d)")
    (x0, x1), (y0, y1) = check_limits(lims, axes=2)
    X, Y, pts = grid(lims, n)
    logp = eval_log_density(f, pts).reshape(X.shape)
    if not normalised:
        logp = logp - np.max(logp)
    dens = np.exp(logp)
    ax = _axes(ax)
    cmap = cmap or (CONTOUR_CMAP if kind == "contour" else DENSITY_CMAP)
    if kind == "heatmap":
        art = ax.imshow(dens, extent=(x0, x1, y0, y1), origin="lower", cmap=cmap, interpolation="bilinear",
                        aspect="auto", alpha=alpha)
    elif kind == "contour":
        art = ax.contour(X.numpy(), Y.numpy(), dens, levels=levels, cmap=cmap, alpha=alpha)
    else:
        art = ax.contourf(X.numpy(), Y.numpy(), dens, levels=levels, cmap=cmap, alpha=alpha)
    if colorbar:
        ax.figure.colorbar(art, ax=ax, shrink=0.85, label="p(x)" if normalised else "p(x) / max p")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    return ax


def plot_density_1d(target, *, ax=None, lims=(-6, 6), n: int = 400, show_score: bool = True, label=None):
    """Draw a 1-D density and, on a twin y-axis, its score ``d/dx log p`` (section 4.1.1).

    Args:
        target: a 1-D ``Distribution`` (exact ``log_prob`` and ``score``) or a callable mapping
            (N, 1) points to (N,) log-densities; a callable is normalised numerically on the
            plotted window (trapezoid rule) and its score comes from autograd.
        show_score: also draw the score (red, right axis, with a dashed zero line).

    Returns:
        ``(ax, score_ax)``; ``score_ax`` is the twin Axes, or None when ``show_score`` is False.
    """
    lo, hi = check_limits(lims)
    n = check_count(n, "n", minimum=2)
    f, normalised = log_density_fn(target)
    if getattr(target, "dim", 1) != 1:
        raise ValueError(f"target: plot_density_1d draws 1-D densities, got dim={target.dim} (use plot_density)")
    xs = torch.linspace(lo, hi, n, dtype=torch.float64).unsqueeze(-1)
    logp = eval_log_density(f, xs)
    dens = np.exp(logp - (0.0 if normalised else logp.max()))
    if not normalised:
        dens = dens / np.trapezoid(dens, xs[:, 0].numpy())
    ax = _axes(ax, figsize=(8.0, 4.5))
    xn = xs[:, 0].numpy()
    ax.plot(xn, dens, color="#1864ab", label=label or "p(x)")
    ax.fill_between(xn, dens, color="#1864ab", alpha=0.15)
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("x")
    ax.set_ylabel("p(x)", color="#1864ab")
    score_ax = None
    if show_score:
        if isinstance(target, Distribution):
            s = target.score(xs).detach().double().numpy()[:, 0]
        else:
            with torch.enable_grad():
                xg = xs.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(f(xg).sum(), xg)
            s = g.detach().numpy()[:, 0]
        score_ax = ax.twinx()
        score_ax.spines["right"].set_visible(True)
        score_ax.plot(xn, s, color=SCORE_COLOR, label="score  d/dx log p(x)")
        score_ax.axhline(0.0, color=SCORE_COLOR, lw=0.8, ls="--", alpha=0.6)
        score_ax.set_ylabel("score  d/dx log p(x)", color=SCORE_COLOR)
    return ax, score_ax


def plot_score_field(score_fn, *, ax=None, lims=(-6, 6), n: int = 21, kind: str = "quiver",
                     normalize: bool = False, color=None, cmap=None, colorbar: bool = False,
                     density: float = 1.2, linewidth: float = 1.0):
    """Draw a 2-D score field ``s(x)`` sampled on an n x n grid (sections 4.1.1, 4.1.3).

    Args:
        score_fn: callable (N, 2) -> (N, 2); a ``Distribution`` works (it returns its score).
        kind: ``"quiver"`` (n * n arrows) or ``"stream"`` (``streamplot`` of the same samples;
            use n >= 40 for sharp features).
        normalize: quiver only: draw unit directions ``s / |s|`` (arrows of equal length, 0.8
            grid spacings) coloured by ``|s|``.  Raw arrows span orders of magnitude far
            from the data, so normalising is usually the readable choice.
        color: a fixed colour; by default normalised arrows and streamlines are coloured by
            ``|s|`` with ``cmap`` and raw arrows are ``FIELD_COLOR``.

    Returns:
        the matplotlib Axes.
    """
    check_choice(kind, "kind", ("quiver", "stream"))
    (x0, x1), (y0, y1) = check_limits(lims, axes=2)
    X, Y, pts = grid(lims, n)
    S = _eval_score(score_fn, pts)
    U, V = S[:, 0].reshape(X.shape), S[:, 1].reshape(X.shape)
    mag = np.hypot(U, V)
    if not np.isfinite(mag).all():
        raise ValueError("score_fn: returned non-finite values on the plotting grid")
    ax = _axes(ax)
    cmap = cmap or MAGNITUDE_CMAP
    Xn, Yn = X.double().numpy(), Y.double().numpy()
    if kind == "quiver":
        if normalize:
            safe = np.where(mag > 0, mag, 1.0)
            U, V = U / safe, V / safe
            h = min((x1 - x0), (y1 - y0)) / (n - 1)
            kw = dict(angles="xy", scale_units="xy", scale=1.0 / (0.8 * h), width=0.004, pivot="mid")
        else:
            kw = dict(angles="xy", pivot="mid", width=0.004)
        if color is None and normalize:
            art = ax.quiver(Xn, Yn, U, V, mag, cmap=cmap, **kw)
        else:
            art = ax.quiver(Xn, Yn, U, V, color=color or FIELD_COLOR, **kw)
    else:
        c = mag if color is None else color
        sp = ax.streamplot(Xn, Yn, U, V, color=c, cmap=cmap if color is None else None, density=density,
                           linewidth=linewidth, arrowsize=1.0)
        art = sp.lines
    if colorbar and color is None and (normalize or kind == "stream"):
        ax.figure.colorbar(art, ax=ax, shrink=0.85, label="|s(x)|")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    return ax


def plot_particles(x, *, ax=None, **scatter_kwargs):
    """Scatter (N, 2) points in the book's particle colour; keyword arguments go to ``ax.scatter``.

    Returns:
        the matplotlib Axes.
    """
    arr = _as_numpy_points(x)
    ax = _axes(ax)
    kw = dict(s=6, color=PARTICLE_COLOR, alpha=0.7, linewidths=0, zorder=3)
    kw.update(scatter_kwargs)
    ax.scatter(arr[:, 0], arr[:, 1], **kw)
    return ax


def plot_paths(trajectory, *, ax=None, max_paths: int = 50, **line_kwargs):
    """Draw the paths of up to ``max_paths`` particles of a (T, N, 2) trajectory, start to end.

    Start points are hollow circles, end points filled.  Returns the matplotlib Axes.
    """
    traj = as_trajectory(trajectory)
    max_paths = check_count(max_paths, "max_paths", minimum=1)
    idx = subsample_index(traj.shape[1], max_paths)
    ax = _axes(ax)
    kw = dict(color=PARTICLE_COLOR, lw=1.0, alpha=0.6)
    kw.update(line_kwargs)
    for j in idx:
        ax.plot(traj[:, j, 0], traj[:, j, 1], **kw)
    ax.scatter(traj[0, idx, 0], traj[0, idx, 1], s=14, facecolors="none", edgecolors=kw["color"], zorder=3)
    ax.scatter(traj[-1, idx, 0], traj[-1, idx, 1], s=14, color=kw["color"], zorder=3)
    return ax


def subsample_index(N: int, k: int) -> np.ndarray:
    """``min(N, k)`` evenly spaced particle indices (deterministic, no random draw)."""
    if N <= k:
        return np.arange(N)
    return np.unique(np.round(np.linspace(0, N - 1, k)).astype(int))
