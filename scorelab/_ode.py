"""One dispatch to the black-box ODE solvers: scipy's ``solve_ivp`` and ``torchdiffeq.odeint``.

Used by the adaptive probability-flow sampler (``scorelab.sde_samplers``) and by the exact
likelihood (``scorelab.likelihood``).  The state is a tensor or a tuple of tensors; the
right-hand side ``fn(t, state)`` takes a Python float time and returns the same structure.
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import check_choice

__all__ = ["SOLVERS", "SCIPY_METHODS", "TORCHDIFFEQ_ADAPTIVE", "solve_ode"]

SOLVERS = ("scipy", "torchdiffeq")
SCIPY_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
# torchdiffeq's adaptive methods: their steps may overshoot the last time and interpolate back
TORCHDIFFEQ_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


def solve_ode(fn, state, t0: float, t1: float, *, t_eval=None, solver: str = "scipy", method: str | None = None,
              rtol: float, atol: float, options: dict | None = None) -> list:
    """Integrate ``d state / dt = fn(t, state)`` from ``t0`` to ``t1`` (either direction).

    Args:
        fn: ``fn(t: float, state) -> same structure``; called under ``torch.no_grad()`` (a
            right-hand side that needs autograd enables it itself).
        state: the initial state, a tensor or a tuple of tensors.
        t_eval: None (return the state at ``t1`` only) or the times, in the direction of
            integration and ending at ``t1``, at which to return the state (scipy: dense output;
            torchdiffeq: its output times).
        solver, method: ``"scipy"`` (``solve_ivp``, ``method`` in ``SCIPY_METHODS``, RK45 by
            default) or ``"torchdiffeq"`` (``odeint``, any of its methods, dopri5 by default;
            adaptive methods are made to land on ``t1`` exactly, where ``fn`` may be undefined
            beyond it).
        rtol, atol: tolerances.
        options: extra keyword arguments of ``solve_ivp`` or the ``options`` of ``odeint``.

    Returns:
        The states at ``t_eval`` (or ``[state at t1]``), each of the structure of ``state``:
        float64 from scipy (which integrates the flattened state in float64), the state's
        dtype from torchdiffeq.
    """
    check_choice(solver, "solver", SOLVERS)
    if solver == "scipy":
        method = check_choice(method or "RK45", "method", SCIPY_METHODS)
    else:
        method = method or "dopri5"
    single = isinstance(state, torch.Tensor)
    parts = (state,) if single else tuple(state)
    shapes = [p.shape for p in parts]
    sizes = [p.numel() for p in parts]
    with torch.no_grad():
        if solver == "scipy":
            from scipy.integrate import solve_ivp

            def split(y):
                out, start = [], 0
                for shape, size in zip(shapes, sizes, strict=True):
                    out.append(torch.from_numpy(y[start:start + size]).reshape(shape))
                    start += size
                return out

            def rhs(t, y):
                # the state lives in numpy on the CPU; the function gets it on its own device (a GPU model)
                args = [v.to(device=p.device, dtype=p.dtype) for v, p in zip(split(y), parts, strict=True)]
                res = fn(t, args[0] if single else tuple(args))
                res = (res,) if single else res
                flat = [r.reshape(-1).double().cpu().numpy() for r in res]
                return flat[0] if single else np.concatenate(flat)

            y0 = [p.reshape(-1).double().cpu().numpy() for p in parts]
            y0 = y0[0] if single else np.concatenate(y0)
            sol = solve_ivp(rhs, (t0, t1), y0, method=method, rtol=rtol, atol=atol,
                            t_eval=None if t_eval is None else list(t_eval), **(options or {}))
            if not sol.success:
                raise RuntimeError(f"solve_ivp failed: {sol.message}")
            columns = range(sol.y.shape[1]) if t_eval is not None else [-1]
            states = [split(sol.y[:, k]) for k in columns]
            return [s[0] if single else tuple(s) for s in states]

        try:
            from torchdiffeq import odeint
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ImportError("solver='torchdiffeq' needs the torchdiffeq package (pip install torchdiffeq)") from exc
        options = dict(options or {})
        if method in TORCHDIFFEQ_ADAPTIVE:
            options.setdefault("step_t", torch.tensor([t1], dtype=torch.float64))
        times = [t0] + ([t1] if t_eval is None else [float(v) for v in t_eval])
        out = odeint(lambda t, y: fn(float(t), y), state,
                     torch.tensor(times, dtype=torch.float64, device=parts[0].device),
                     rtol=rtol, atol=atol, method=method, options=options)
        if single:
            return list(out[1:])
        return [tuple(o[k] for o in out) for k in range(1, len(times))]
