"""How fast and how good are the SDE/ODE samplers of section 4.5 when the score is exact?

For the 8-Gaussian toy under the VP and VE SDEs, every sampler of ``scorelab.sde_samplers``
is driven by the exact time-conditional score (``scorelab.sdes.exact_score_fn``) and the table
reports, for 10k and 100k particles:

- wall time and NFE (score evaluations);
- the floor ``NFE x (time of one score evaluation)``: what a loop with zero overhead would
  cost, and the ratio wall / floor (1.0 = no Python or allocation overhead beyond the score);
- the sliced Wasserstein distance to fresh exact samples, next to the SW floor of two exact
  sample sets (what a perfect sampler scores).

For comparison, the same analytic score drives diffusers' ``ScoreSdeVeScheduler`` (the
predictor-corrector sampler of Song et al. 2021, VE SDE) when diffusers is installed
(``pip install -r requirements-dev.txt``), and k-diffusion's Karras samplers when k-diffusion is
installed (``pip install --no-deps -r requirements-dev-nodeps.txt``; only its ``sampling.py`` is
loaded, see ``k_diffusion_samplers``).  Missing peers are reported as skipped.

    python benchmarks/bench_sde_samplers.py            # full table (a few minutes on 1 core)
    python benchmarks/bench_sde_samplers.py --quick    # 10k particles only
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import scorelab as sl
from scorelab.sde_samplers import (sample_dpm_solver_2, sample_euler_maruyama, sample_heun_karras, sample_pc,
                                   sample_probability_flow, sample_probability_flow_adaptive,
                                   sample_reverse_diffusion)
from scorelab.sdes import VESDE, VPSDE, exact_score_fn

from scorelab.metrics import sliced_wasserstein, sliced_wasserstein_floor


def gen(seed):
    return torch.Generator().manual_seed(seed)


def best_time(fn, repeat=3):
    """Best wall time of ``repeat`` runs (the least disturbed by other processes) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def score_time(score, x, t=0.5, repeat=20):
    tt = torch.full((x.shape[0],), t, dtype=x.dtype).expand(x.shape[0])
    score(x, tt)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            score(x, tt)
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def sw_to_data(x, data, seed):
    """SW of x to a fresh exact sample set of the same size."""
    return sliced_wasserstein(x, data.sample(x.shape[0], generator=gen(seed)), generator=gen(seed + 1))


def ours(sde, score):
    return [
        ("Euler-Maruyama, 500 steps", lambda x, st: sample_euler_maruyama(score, x, sde, n_steps=500, generator=1, stats=st)),
        ("reverse diffusion, 500 steps", lambda x, st: sample_reverse_diffusion(score, x, sde, n_steps=500, generator=1, stats=st)),
        ("PC (RD + Langevin), 250 steps", lambda x, st: sample_pc(score, x, sde, n_steps=250, snr=0.16, generator=1, stats=st)),
        ("ODE Euler, 200 steps", lambda x, st: sample_probability_flow(score, x, sde, n_steps=200, method="euler", stats=st)),
        ("ODE Heun, 100 steps", lambda x, st: sample_probability_flow(score, x, sde, n_steps=100, method="heun", stats=st)),
        ("ODE RK45 (scipy), tol 1e-5", lambda x, st: sample_probability_flow_adaptive(score, x, sde, rtol=1e-5, atol=1e-5, stats=st)),
        ("ODE dopri5 (torchdiffeq), tol 1e-5", lambda x, st: sample_probability_flow_adaptive(
            score, x, sde, solver="torchdiffeq", rtol=1e-5, atol=1e-5, stats=st)),
        ("Heun-Karras rho=7, 10 steps", lambda x, st: sample_heun_karras(score, x, sde, n_steps=10, stats=st)),
        ("DPM-Solver-2, 10 steps", lambda x, st: sample_dpm_solver_2(score, x, sde, n_steps=10, stats=st)),
    ]


def diffusers_pc(data, n_steps, x_T, snr=0.16, sigma_min=0.01, sigma_max=50.0):
    """diffusers' ScoreSdeVeScheduler loop (as in its ScoreSdeVePipeline), exact noised score as the model."""
    from diffusers import ScoreSdeVeScheduler

    noised = sl.noised_score(data, cache_size=4 * n_steps)
    sched = ScoreSdeVeScheduler(num_train_timesteps=n_steps, snr=snr, sigma_min=sigma_min, sigma_max=sigma_max,
                                sampling_eps=1e-3, correct_steps=1)
    sched.set_timesteps(n_steps)
    sched.set_sigmas(n_steps)
    g = gen(1)
    x = x_T.clone()
    x_mean = x
    nfe = 0
    for i, t in enumerate(sched.timesteps):
        sigma = float(sched.sigmas[i])
        for _ in range(sched.config.correct_steps):
            x = sched.step_correct(noised(x, sigma), x, generator=g).prev_sample
            nfe += 1
        out = sched.step_pred(noised(x, sigma), t, x, generator=g)
        x, x_mean = out.prev_sample, out.prev_sample_mean
        nfe += 1
    return x_mean, nfe


def k_diffusion_samplers():
    """k-diffusion's ``sampling`` module, or None and the reason it is unavailable.

    k-diffusion's package ``__init__`` imports its image-model code, which needs torchvision
    (and torchvision from PyPI does not import beside the pinned CPU torch).  Its
    ``sampling.py`` needs only torch, scipy, torchdiffeq, torchsde, tqdm and
    ``utils.append_dims``, so we load that file alone, with a one-function stand-in for
    ``k_diffusion.utils``; the samplers timed are k-diffusion's own code, unchanged.
    """
    import importlib
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        return None, "not installed: pip install --no-deps -r requirements-dev-nodeps.txt"
    try:
        pkg = types.ModuleType("k_diffusion")
        pkg.__path__ = list(spec.submodule_search_locations)
        utils = types.ModuleType("k_diffusion.utils")
        utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
        sys.modules["k_diffusion"], sys.modules["k_diffusion.utils"] = pkg, utils
        ks = importlib.import_module("k_diffusion.sampling")
    except Exception as exc:  # a missing torchsde, say
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:70]}"
    return ks, ""


def k_diffusion_rows(ks, data, x_T, n_steps=10, sigma_min=0.01, sigma_max=50.0):  # pragma: no cover - optional
    noised = sl.noised_score(data, cache_size=4096)
    nfe = [0]

    def denoiser(x, sigma):  # k-diffusion's model: D(x; sigma) = x + sigma^2 score(x, sigma)
        nfe[0] += 1
        s = float(sigma.reshape(-1)[0])
        return x + s * s * noised(x, s)

    sigmas = ks.get_sigmas_karras(n_steps, sigma_min, sigma_max, rho=7.0)
    rows = []
    for name in ("sample_euler", "sample_heun", "sample_dpm_2"):
        nfe[0] = 0
        t, x = best_time(lambda: getattr(ks, name)(denoiser, x_T.clone(), sigmas, disable=True), repeat=1)
        rows.append((f"k-diffusion {name}, {n_steps} steps", t, nfe[0], x))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k particles only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = sl.eight_gaussians()
    sizes = (10_000,) if args.quick else (10_000, 100_000)
    ks, ks_reason = k_diffusion_samplers()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); data: {data}")
    header = (f"{'SDE':3s} {'N':>7s}  {'sampler':38s} {'NFE':>5s} {'wall s':>8s} {'floor s':>8s} "
              f"{'wall/floor':>10s} {'SW':>7s}")
    print(header)
    print("-" * len(header))
    for sde_name, sde in (("VP", VPSDE()), ("VE", VESDE(0.01, 50.0))):
        score = exact_score_fn(sde, data)
        for n in sizes:
            x_T = sde.prior_sampling((n, 2), generator=gen(0))
            t1 = score_time(score, x_T)
            # SW between two exact sets fluctuates a lot (mode weights are binomial): mean +- std of 5 pairs
            sw_floor = sliced_wasserstein_floor(data, n, n_repeats=5, generator=gen(3))
            rows = []
            for label, run in ours(sde, score):
                st = {}
                wall, x = best_time(lambda: run(x_T, st), repeat=2 if n > 10_000 else 3)
                rows.append((label, wall, st["nfe"], x))
            if sde_name == "VE":
                try:
                    wall, (x, nfe) = best_time(lambda: diffusers_pc(data, 250, x_T), repeat=2)
                    rows.append(("diffusers ScoreSdeVeScheduler PC, 250", wall, nfe, x))
                except ImportError:
                    rows.append(("diffusers: not installed (skipped)", math.nan, 0, None))
                if ks is not None:  # pragma: no cover - optional
                    rows += k_diffusion_rows(ks, data, x_T)
            for label, wall, nfe, x in rows:
                if x is None:
                    print(f"{sde_name:3s} {n:7d}  {label:38s}")
                    continue
                sw = sw_to_data(x, data, seed=10)
                floor_t = nfe * t1
                print(f"{sde_name:3s} {n:7d}  {label:38s} {nfe:5d} {wall:8.3f} {floor_t:8.3f} {wall / floor_t:10.2f} "
                      f"{sw:7.3f}")
            print(f"{'':12s} one exact score evaluation at N = {n}: {t1 * 1e3:.3f} ms; SW floor (two exact sets): "
                  f"{sw_floor[0]:.3f} +- {sw_floor[1]:.3f}")
    if ks is None:
        print(f"\nk-diffusion: skipped ({ks_reason}).")
    print("\nwall/floor: wall time over NFE x (one score evaluation).  The SDE samplers also draw N x d Gaussian "
          "numbers per step; the adaptive solvers pay for numpy <-> torch copies (scipy) or their own "
          "bookkeeping (torchdiffeq).  Ratios below 1 mean the score timing was disturbed by other processes.")
    print("diffusers' loop runs the corrector before the predictor (as the paper's code) on the geometric "
          "sigma(t) of the VE SDE; ours runs predictor then corrector (the paper's Algorithm 1).")


if __name__ == "__main__":
    main()
