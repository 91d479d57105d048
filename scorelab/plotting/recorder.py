"""The trajectory recorder: a sampler callback that keeps the states an animation needs.

Part of ``scorelab.plotting``.  Every scorelab sampler calls ``callback(dict)`` after each step
with at least ``"i"`` (the step, from 0) and ``"x"`` (the state after it), CONTRIBUTING.md
("Samplers"); :class:`TrajectoryRecorder` is such a callback.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .._checks import check_count

__all__ = ["TrajectoryRecorder"]


class TrajectoryRecorder:
    """A sampler ``callback`` that keeps every ``every``-th state (CONTRIBUTING.md, samplers).

    Samplers call ``callback({"i": i, "x": x, ...})`` after step ``i`` (counted from 0), so ``x``
    is the state after ``i + 1`` steps.  The recorder stores ``x.detach().clone()`` after steps
    ``every, 2 every, 3 every, ...`` (``(i + 1) % every == 0``), so with ``x0`` given and
    ``n_steps`` a multiple of ``every`` it holds states 0, every, ..., n_steps.  The dict's scalar
    entries (numbers and 0-d tensors, e.g. ``"sigma"``, ``"t"``, ``"step_size"``) go to
    :attr:`info`; tensors of points (``"denoised"``, ``"x_mean"``, ...) are not kept.

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
        self.every = check_count(every, "every", minimum=1)
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
            if isinstance(v, torch.Tensor) and v.ndim == 0:
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
