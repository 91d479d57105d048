"""Pictures of densities, score fields, particles and their motion (every chapter, from 4.1).

A score function ``s(x) = grad log p(x)`` is a vector field (section 4.1.1); samplers move
particles along it (4.1.2, 4.3, 4.4).  This package draws the three objects every chapter
shows side by side, in three modules (import every name from ``scorelab.plotting``):

- ``figures``, static pictures: a density ``p`` (heatmap or contours, 2-D; curve plus score on
  a twin axis, 1-D): :func:`plot_density`, :func:`plot_density_1d`; a score field (arrows or
  streamlines): :func:`plot_score_field`; particles and their paths: :func:`plot_particles`,
  :func:`plot_paths`; the book's colours and :func:`use_style`;
- ``recorder``: :class:`TrajectoryRecorder`, a sampler ``callback`` that keeps the states;
- ``animation``: :func:`animate_particles` (matplotlib, shown inline with :func:`to_html`) and
  :func:`animate_particles_plotly` (plotly frames with a play button and a slider).

Conventions: points are ``(N, 2)`` tensors (or arrays); a trajectory is ``(T, N, 2)``;
``lims`` is ``(lo, hi)`` for both axes or ``((xlo, xhi), (ylo, yhi))``.  A *target* is a
:class:`scorelab.distributions.Distribution` (its ``log_prob``, or ``unnormalized_log_prob``
for an energy model) or a callable mapping ``(N, d)`` points to ``(N,)`` log-densities.
Note that a ``Distribution`` is itself callable as a *score* function, so it can be passed
to :func:`plot_score_field` directly.  Figure text is English or math only.
"""

from .animation import animate_particles, animate_particles_plotly, to_html
from .figures import (
    CONTOUR_CMAP,
    DENSITY_CMAP,
    EMBED_LIMIT_MB,
    FIELD_COLOR,
    MAGNITUDE_CMAP,
    PARTICLE_COLOR,
    SCORE_COLOR,
    grid,
    plot_density,
    plot_density_1d,
    plot_particles,
    plot_paths,
    plot_score_field,
    use_style,
)
from .recorder import TrajectoryRecorder

__all__ = [
    "DENSITY_CMAP",
    "CONTOUR_CMAP",
    "MAGNITUDE_CMAP",
    "PARTICLE_COLOR",
    "FIELD_COLOR",
    "SCORE_COLOR",
    "EMBED_LIMIT_MB",
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
