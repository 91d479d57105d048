"""Animations of particles: matplotlib (``to_jshtml``) and plotly frames (4.1.2, 4.3, 4.4, 4.5).

Part of ``scorelab.plotting`` (see its docstring for the conventions).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from .._checks import check_choice, check_count, check_limits, check_type
from .figures import (
    DENSITY_CMAP,
    EMBED_LIMIT_MB,
    PARTICLE_COLOR,
    as_trajectory,
    eval_log_density,
    grid,
    log_density_fn,
    plot_density,
    subsample_index,
)

__all__ = ["animate_particles", "to_html", "animate_particles_plotly"]


def _as_panels(trajectory) -> dict[str, np.ndarray]:
    """One trajectory, or a mapping title -> trajectory (side-by-side panels, equal T)."""
    if isinstance(trajectory, Mapping):
        if not trajectory:
            raise ValueError("trajectory: expected at least one panel, got an empty mapping")
        panels = {str(k): as_trajectory(v, f"trajectory[{k!r}]") for k, v in trajectory.items()}
        lengths = {k: v.shape[0] for k, v in panels.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"trajectory: every panel needs the same number of frames T, got {lengths}")
        return panels
    return {"": as_trajectory(trajectory)}


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


def _plotly_scale(name: str, n: int = 11) -> list:
    """A matplotlib colormap as a plotly colorscale: [[t, 'rgb(r, g, b)'], ...]."""
    cmap = mpl.colormaps[name]
    return [[float(t), "rgb({}, {}, {})".format(*(int(round(255 * c)) for c in cmap(t)[:3]))]
            for t in np.linspace(0, 1, n)]


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
    interval = check_count(interval, "interval", minimum=1)
    (x0, x1), (y0, y1) = check_limits(lims, axes=2)
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

    check_type(anim, Animation, "anim", "a matplotlib Animation")
    check_choice(default_mode, "default_mode", ("loop", "once", "reflect"))
    check_choice(frame_format, "frame_format", ("jpeg", "png"))
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
    max_points = check_count(max_points, "max_points", minimum=1)
    interval = check_count(interval, "interval", minimum=1)
    (x0, x1), (y0, y1) = check_limits(lims, axes=2)
    k = len(panels)
    names = list(panels)
    fig = make_subplots(rows=1, cols=k, subplot_titles=names if any(names) else None, horizontal_spacing=0.06)
    if background is not None:
        f, normalised = log_density_fn(background)
        X, Y, pts = grid(lims, n_background)
        logp = eval_log_density(f, pts).reshape(X.shape)
        dens = np.exp(logp if normalised else logp - logp.max())
        for c in range(k):
            fig.add_trace(go.Heatmap(x=X[0].numpy(), y=Y[:, 0].numpy(), z=dens, colorscale=_plotly_scale(DENSITY_CMAP),
                                     showscale=False, hoverinfo="skip"), row=1, col=c + 1)
    idx = [subsample_index(p.shape[1], max_points) for p in panels.values()]
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
