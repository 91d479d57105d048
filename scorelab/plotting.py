"""Pictures of densities, score fields, particles and their motion (every chapter, from 4.1).

A score function ``s(x) = grad log p(x)`` is a vector field (section 4.1.1); samplers move
particles along it (4.1.2, 4.3, 4.4).  This module draws the three objects every chapter
shows side by side:

- a density ``p`` (heatmap or contours, 2-D; curve plus score on a twin axis, 1-D):
  :func:`plot_density`, :func:`plot_density_1d`;
- a score field (arrows or streamlines): :func:`plot_score_field`;
- particles and their trajectories: :func:`plot_particles`, :func:`plot_paths`,
  :class:`TrajectoryRecorder` (a sampler ``callback``), :func:`animate_particles`
  (matplotlib, shown inline with :func:`to_html`) and :func:`animate_particles_plotly`
  (plotly frames with a play button and a slider).

Conventions: points are ``(N, 2)`` tensors (or arrays); a trajectory is ``(T, N, 2)``;
``lims`` is ``(lo, hi)`` for both axes or ``((xlo, xhi), (ylo, yhi))``.  A *target* is a
:class:`scorelab.distributions.Distribution` (its ``log_prob``, or ``unnormalized_log_prob``
for an energy model) or a callable mapping ``(N, d)`` points to ``(N,)`` log-densities.
Note that a ``Distribution`` is itself callable as a *score* function, so it can be passed
to :func:`plot_score_field` directly.  Figure text is English or math only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from .distributions import Distribution, EnergyModel

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
    "TrajectoryRecorder",
    "animate_particles",
    "to_html",
    "animate_particles_plotly",
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


# -- input checks ---------------------------------------------------------------

def _lims2(lims) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(lo, hi)`` or ``((xlo, xhi), (ylo, yhi))`` -> two float pairs, each with lo < hi."""
    try:
        arr = np.asarray(lims, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lims: expected (lo, hi) or ((xlo, xhi), (ylo, yhi)), got {lims!r}") from exc
    if arr.shape == (2,):
        arr = np.stack([arr, arr])
    if arr.shape != (2, 2) or not np.isfinite(arr).all() or not (arr[:, 0] < arr[:, 1]).all():
        raise ValueError(f"lims: expected (lo, hi) or ((xlo, xhi), (ylo, yhi)) with finite lo < hi, got {lims!r}")
    return (float(arr[0, 0]), float(arr[0, 1])), (float(arr[1, 0]), float(arr[1, 1]))


def _lims1(lims) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in lims)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lims: expected a pair (lo, hi), got {lims!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"lims: expected finite lo < hi, got {lims!r}")
    return lo, hi


def _check_n(n, name: str = "n", minimum: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {n!r}")
    return int(n)


def _as_numpy_points(x, name: str = "x", dim: int = 2) -> np.ndarray:
    """A (N, dim) tensor or array -> float numpy array, with a clear error otherwise."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().double().numpy()
    elif isinstance(x, np.ndarray):
        arr = x.astype(float)
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array of shape (N, {dim}), got {type(x).__name__}")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (N, {dim}), got {tuple(arr.shape)}")
    return arr


def _as_trajectory(trajectory, name: str = "trajectory") -> np.ndarray:
    """A (T, N, 2) tensor/array or a TrajectoryRecorder -> float numpy array (T, N, 2)."""
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


def _as_panels(trajectory) -> dict[str, np.ndarray]:
    """One trajectory, or a mapping title -> trajectory (side-by-side panels, equal T)."""
    if isinstance(trajectory, Mapping):
        if not trajectory:
            raise ValueError("trajectory: expected at least one panel, got an empty mapping")
        panels = {str(k): _as_trajectory(v, f"trajectory[{k!r}]") for k, v in trajectory.items()}
        lengths = {k: v.shape[0] for k, v in panels.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"trajectory: every panel needs the same number of frames T, got {lengths}")
        return panels
    return {"": _as_trajectory(trajectory)}


def _titles(titles, T: int) -> list[str] | None:
    if titles is None:
        return None
    if callable(titles):
        return [str(titles(t)) for t in range(T)]
    if isinstance(titles, str):
        raise TypeError("titles: expected a sequence of T strings or a callable frame -> str, got one string")
    titles = [str(t) for t in titles]
    if len(titles) != T:
        raise ValueError(f"titles: expected {T} titles (one per frame), got {len(titles)}")
    return titles


def _log_density_fn(target):
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


def _eval_log_density(f, pts: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = f(pts)
    if not isinstance(out, torch.Tensor) or out.shape != (pts.shape[0],):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"target: expected a log-density mapping (N, d) points to (N,) values, got an output of shape {got} "
            f"for N={pts.shape[0]} points"
        )
    return out.detach().cpu().double().numpy()


def _eval_score(score_fn, pts: torch.Tensor) -> np.ndarray:
    if not callable(score_fn):
        raise TypeError("score_fn: expected a callable mapping (N, d) points to (N, d) scores, "
                        f"got {type(score_fn).__name__}")
    out = score_fn(pts)
    if not isinstance(out, torch.Tensor) or out.shape != pts.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"score_fn: expected (N, d) -> (N, d), an output of shape {tuple(pts.shape)}, got {got}")
    return out.detach().cpu().double().numpy()


def _axes(ax, figsize=(6.0, 6.0)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


# -- static plots -----------------------------------------------------------------

def grid(lims=(-6, 6), n: int = 200, *, dtype: torch.dtype | None = None):
    """A regular n x n grid over ``lims``.

    Returns:
        ``(X, Y, points)``: X and Y are (n, n) tensors in ``meshgrid(indexing="xy")``
        layout (row = y, column = x, as ``imshow``/``contour``/``streamplot`` expect), and
        ``points`` is the (n * n, 2) tensor of the same points, row-major, so any
        ``f(points).reshape(n, n)`` lines up with X and Y.
    """
    (x0, x1), (y0, y1) = _lims2(lims)
    n = _check_n(n)
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
    if kind not in ("heatmap", "contour", "contourf"):
        raise ValueError(f"kind: expected 'heatmap', 'contour' or 'contourf', got {kind!r}")
    f, normalised = _log_density_fn(target)
    if getattr(target, "dim", 2) != 2:
        raise ValueError(f"target: plot_density draws 2-D densities, got dim={target.dim} (use plot_density_1d)")
    (x0, x1), (y0, y1) = _lims2(lims)
    X, Y, pts = grid(lims, n)
    logp = _eval_log_density(f, pts).reshape(X.shape)
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
    lo, hi = _lims1(lims)
    n = _check_n(n)
    f, normalised = _log_density_fn(target)
    if getattr(target, "dim", 1) != 1:
        raise ValueError(f"target: plot_density_1d draws 1-D densities, got dim={target.dim} (use plot_density)")
    xs = torch.linspace(lo, hi, n, dtype=torch.float64).unsqueeze(-1)
    logp = _eval_log_density(f, xs)
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
    if kind not in ("quiver", "stream"):
        raise ValueError(f"kind: expected 'quiver' or 'stream', got {kind!r}")
    (x0, x1), (y0, y1) = _lims2(lims)
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
    traj = _as_trajectory(trajectory)
    max_paths = _check_n(max_paths, "max_paths", minimum=1)
    idx = _subsample_index(traj.shape[1], max_paths)
    ax = _axes(ax)
    kw = dict(color=PARTICLE_COLOR, lw=1.0, alpha=0.6)
    kw.update(line_kwargs)
    for j in idx:
        ax.plot(traj[:, j, 0], traj[:, j, 1], **kw)
    ax.scatter(traj[0, idx, 0], traj[0, idx, 1], s=14, facecolors="none", edgecolors=kw["color"], zorder=3)
    ax.scatter(traj[-1, idx, 0], traj[-1, idx, 1], s=14, color=kw["color"], zorder=3)
    return ax


def _plotly_scale(name: str, n: int = 11) -> list:
    """A matplotlib colormap as a plotly colorscale: [[t, 'rgb(r, g, b)'], ...]."""
    cmap = mpl.colormaps[name]
    return [[float(t), "rgb({}, {}, {})".format(*(int(round(255 * c)) for c in cmap(t)[:3]))]
            for t in np.linspace(0, 1, n)]


def _subsample_index(N: int, k: int) -> np.ndarray:
    """``min(N, k)`` evenly spaced particle indices (deterministic, no random draw)."""
    if N <= k:
        return np.arange(N)
    return np.unique(np.round(np.linspace(0, N - 1, k)).astype(int))


# -- recording and animating --------------------------------------------------------

class TrajectoryRecorder:
    """A sampler ``callback`` that keeps every ``every``-th state (CONTRIBUTING.md, samplers).

    Samplers call ``callback({"i": i, "x": x, ...})`` after step ``i`` (counted from 0), so ``x``
    is the state after ``i + 1`` steps.  The recorder stores ``x.detach().clone()`` after steps
    ``every, 2 every, 3 every, ...`` (``(i + 1) % every == 0``), so with ``x0`` given and
    ``n_steps`` a multiple of ``every`` it holds states 0, every, ..., n_steps.  The dict's scalar
    entries (numbers and one-element tensors, e.g. ``"sigma"``, ``"step_size"``) go to :attr:`info`.

    Args:
        every: keep one state in ``every``.
        x0: optional (N, d) initial state, stored first with info ``{"i": -1}`` so an
            animation starts before the first step.

    Attributes:
        trajectory: (T, N, d) tensor of the kept states.
        info: list of T dicts of scalar entries, one per kept state.
        steps: list of the T callback indices ``i`` kept (-1 for ``x0``); frame t shows the
            state after ``steps[t] + 1`` steps.
    """

    def __init__(self, every: int = 1, x0: torch.Tensor | None = None):
        self.every = _check_n(every, "every", minimum=1)
        self._states: list[torch.Tensor] = []
        self.info: list[dict] = []
        if x0 is not None:
            self._store(x0, {"i": -1})

    def _store(self, x, info: dict) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected a (N, d) tensor, got {got}")
        if self._states and x.shape != self._states[0].shape:
            raise ValueError(f"x: expected shape {tuple(self._states[0].shape)} like the states before, "
                             f"got {tuple(x.shape)}")
        self._states.append(x.detach().clone())
        self.info.append(info)

    def __call__(self, info: Mapping) -> None:
        if not isinstance(info, Mapping) or "i" not in info or "x" not in info:
            raise TypeError("callback: expected a dict with at least the keys 'i' (step) and 'x' (state)")
        i = int(info["i"])
        if (i + 1) % self.every:
            return
        scalars = {}
        for k, v in info.items():
            if k == "x":
                continue
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                scalars[k] = v.item()
            elif isinstance(v, (bool, int, float, np.number)):
                scalars[k] = v.item() if isinstance(v, np.number) else v
        scalars["i"] = i
        self._store(info["x"], scalars)

    @property
    def steps(self) -> list[int]:
        return [d["i"] for d in self.info]

    @property
    def trajectory(self) -> torch.Tensor:
        if not self._states:
            raise ValueError("TrajectoryRecorder: nothing recorded yet (pass it as a sampler's callback=)")
        return torch.stack(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def reset(self) -> None:
        """Forget every stored state."""
        self._states.clear()
        self.info.clear()

    def __repr__(self) -> str:
        return f"TrajectoryRecorder(every={self.every}, frames={len(self)})"


def animate_particles(trajectory, *, background=None, lims=(-6, 6), interval: int = 60, titles=None,
                      panel_size: float = 4.5, dpi: int = 72, n_background: int = 120, **scatter_kwargs):
    """Animate particles moving through the plane (a matplotlib ``FuncAnimation``), e.g. Langevin (4.1.2).

    Args:
        trajectory: (T, N, 2) tensor/array or a :class:`TrajectoryRecorder`; or a mapping
            ``{panel title: trajectory}`` of equal T for side-by-side panels.
        background: optional target drawn under the particles with :func:`plot_density`.
        interval: milliseconds between frames.
        titles: T strings (or a callable frame -> str) shown as the figure title per frame.
        panel_size, dpi: inches per panel and dots per inch of the frames; every frame is
            redrawn and embedded, so these set both the rendering time and the page weight.

    Returns:
        a ``FuncAnimation`` with T frames; show it inline with :func:`to_html`.
    """
    from matplotlib.animation import FuncAnimation

    panels = _as_panels(trajectory)
    T = next(iter(panels.values())).shape[0]
    titles = _titles(titles, T)
    interval = _check_n(interval, "interval", minimum=1)
    (x0, x1), (y0, y1) = _lims2(lims)
    k = len(panels)
    fig, axes = plt.subplots(1, k, figsize=(panel_size * k, panel_size + (0.4 if titles else 0.0)), dpi=dpi,
                             squeeze=False)
    kw = dict(s=6, color=PARTICLE_COLOR, alpha=0.7, linewidths=0)
    kw.update(scatter_kwargs)
    scatters = []
    for ax, (name, traj) in zip(axes[0], panels.items(), strict=True):
        if background is not None:
            plot_density(background, ax=ax, lims=lims, n=n_background)
        scatters.append(ax.scatter(traj[0, :, 0], traj[0, :, 1], **kw))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        if name:
            ax.set_title(name)
    suptitle = fig.suptitle(titles[0] if titles else "")
    fig.tight_layout()
    trajs = list(panels.values())

    def update(t):
        for sc, traj in zip(scatters, trajs, strict=True):
            sc.set_offsets(traj[t])
        if titles:
            suptitle.set_text(titles[t])
        return scatters

    return FuncAnimation(fig, update, frames=T, interval=interval, blit=False)


def to_html(anim, *, default_mode: str = "loop", frame_format: str = "jpeg"):
    """Render a matplotlib animation as inline JavaScript (``to_jshtml``) and close its figure.

    Frames are rendered at the figure's own dpi and embedded as JPEG by default (about a
    quarter of the size of PNG for frames with a smooth density background); pass
    ``frame_format="png"`` for lossless frames.  Closing the figure keeps the notebook from
    also drawing its last frame as a static image.

    Returns:
        an ``IPython.display.HTML`` object (display it, or make it a cell's last value).
    """
    from IPython.display import HTML
    from matplotlib.animation import Animation

    if not isinstance(anim, Animation):
        raise TypeError(f"anim: expected a matplotlib Animation, got {type(anim).__name__}")
    if default_mode not in ("loop", "once", "reflect"):
        raise ValueError(f"default_mode: expected 'loop', 'once' or 'reflect', got {default_mode!r}")
    if frame_format not in ("jpeg", "png"):
        raise ValueError(f"frame_format: expected 'jpeg' or 'png', got {frame_format!r}")
    limit = max(float(mpl.rcParams["animation.embed_limit"]), EMBED_LIMIT_MB)
    rc = {"savefig.dpi": "figure", "animation.frame_format": frame_format, "animation.embed_limit": limit}
    try:
        with mpl.rc_context(rc):
            html = anim.to_jshtml(default_mode=default_mode)
    finally:
        plt.close(anim._fig)
    return HTML(html)


def animate_particles_plotly(trajectory, *, background=None, lims=(-6, 6), max_points: int = 1000, titles=None,
                             interval: int = 80, n_background: int = 100, panel_size: int = 460):
    """Animate particles as a plotly figure with frames, a play/pause button and a frame slider.

    Args:
        trajectory: (T, N, 2) tensor/array or a :class:`TrajectoryRecorder`; or a mapping
            ``{panel title: trajectory}`` of equal T for side-by-side panels.
        background: optional target (see :func:`plot_density`) drawn as a density heatmap.
        max_points: at most this many particles are drawn (evenly spaced indices, so the
            same particles in every frame).
        titles: T strings (or a callable frame -> str), the title of each frame.

    Returns:
        a ``plotly.graph_objects.Figure`` with T frames.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = _as_panels(trajectory)
    T = next(iter(panels.values())).shape[0]
    titles = _titles(titles, T)
    max_points = _check_n(max_points, "max_points", minimum=1)
    interval = _check_n(interval, "interval", minimum=1)
    (x0, x1), (y0, y1) = _lims2(lims)
    k = len(panels)
    names = list(panels)
    fig = make_subplots(rows=1, cols=k, subplot_titles=names if any(names) else None, horizontal_spacing=0.06)
    if background is not None:
        f, normalised = _log_density_fn(background)
        X, Y, pts = grid(lims, n_background)
        logp = _eval_log_density(f, pts).reshape(X.shape)
        dens = np.exp(logp if normalised else logp - logp.max())
        for c in range(k):
            fig.add_trace(go.Heatmap(x=X[0].numpy(), y=Y[:, 0].numpy(), z=dens, colorscale=_plotly_scale(DENSITY_CMAP),
                                     showscale=False, hoverinfo="skip"), row=1, col=c + 1)
    idx = [_subsample_index(p.shape[1], max_points) for p in panels.values()]
    trajs = [p[:, j] for p, j in zip(panels.values(), idx, strict=True)]
    marker = dict(size=4, color=PARTICLE_COLOR, opacity=0.75)
    first = len(fig.data)
    for c, tr in enumerate(trajs):
        fig.add_trace(go.Scatter(x=tr[0, :, 0], y=tr[0, :, 1], mode="markers", marker=marker, showlegend=False,
                                 hoverinfo="skip"), row=1, col=c + 1)
    scatter_ids = list(range(first, first + k))
    frames = []
    for t in range(T):
        data = [go.Scatter(x=tr[t, :, 0], y=tr[t, :, 1]) for tr in trajs]
        layout = go.Layout(title_text=titles[t]) if titles else None
        frames.append(go.Frame(data=data, traces=scatter_ids, name=str(t), layout=layout))
    fig.frames = frames
    play = dict(frame=dict(duration=interval, redraw=False), transition=dict(duration=0), fromcurrent=True,
                mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    fig.update_layout(
        width=panel_size * k + 80, height=panel_size + 120, template="simple_white",
        title_text=titles[0] if titles else None, margin=dict(l=40, r=20, t=70, b=40),
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.08, xanchor="left", yanchor="top",
                          showactive=False,
                          buttons=[dict(label="Play", method="animate", args=[None, play]),
                                   dict(label="Pause", method="animate", args=[[None], pause])])],
        sliders=[dict(active=0, x=0.16, y=-0.04, len=0.84, xanchor="left", yanchor="top",
                      currentvalue=dict(prefix="frame "),
                      steps=[dict(label=str(t), method="animate", args=[[str(t)], pause]) for t in range(T)])],
    )
    for c in range(k):
        fig.update_xaxes(range=[x0, x1], row=1, col=c + 1, constrain="domain")
        fig.update_yaxes(range=[y0, y1], row=1, col=c + 1, scaleanchor=f"x{c + 1 if c else ''}", scaleratio=1,
                         constrain="domain")
    return fig
