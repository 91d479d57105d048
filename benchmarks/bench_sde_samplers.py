"""How fast and how good are the SDE/ODE samplers of section 4.5 when the score is exact?

For the 8-Gaussian toy under the VP and VE SDEs, every sampler of ``scorelab.sde_samplers``
is driven by the exact time-conditional score (``scorelab.sdes.exact_score_fn``) and the table
reports, for 10k and 100k particles:

- NFE (score evaluations) and the wall time of a plain run;
- the floor: the time the run spends inside its score evaluations and its Gaussian draws,
  measured in place (a second, instrumented run with a timer around every score call and
  every ``torch.randn``).  That is the work the algorithm cannot skip: a peer at equal NFE
  evaluates the same score on the same kind of inputs and, for an SDE sampler, draws the
  same N x d Gaussian numbers per update.  The score is timed on the sampler's own inputs
  because its cost is not constant: it depends on t and on where the particles are;
- ``wall/score`` (wall time over the score time alone, i.e. over NFE x the mean cost of one
  evaluation) and ``wall/floor`` (over score + noise).  1.00 means no overhead at all;
  the target for our own sampling loops is ``wall/floor <= 1.15``;
- the sliced Wasserstein distance to fresh exact samples, next to the SW floor of two exact
  sample sets (what a perfect sampler scores).

For comparison, the same analytic score drives diffusers' ``ScoreSdeVeScheduler`` (the
predictor-corrector sampler of Song et al. 2021, VE SDE) when diffusers is installed
(``pip install -r requirements-dev.txt``), and k-diffusion's Karras samplers when k-diffusion is
installed (``pip install --no-deps -r requirements-dev-nodeps.txt``; only its ``sampling.py`` is
loaded, see ``k_diffusion_samplers``).  Missing peers are reported as skipped.  Their floors
are measured the same way (timers around the score and around diffusers' ``randn_tensor``).

Each time is the best of 3 to 15 interleaved repeats (the least disturbed by other processes);
at 100k particles the ratios still move by about +-0.1 from run to run on a shared machine.

    python benchmarks/bench_sde_samplers.py            # full table (a few minutes on 1 core)
    python benchmarks/bench_sde_samplers.py --quick    # 10k particles only
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import torch

import scorelab as sl
import scorelab.sde_samplers as sds
from scorelab.metrics import sliced_wasserstein, sliced_wasserstein_floor
from scorelab.sde_samplers import (
    sample_dpm_solver_2,
    sample_euler_maruyama,
    sample_heun_karras,
    sample_pc,
    sample_probability_flow,
    sample_probability_flow_adaptive,
    sample_reverse_diffusion,
)
from scorelab.sdes import VESDE, VPSDE, exact_score_fn

TARGET = 1.15  # wall time within 15% of the floor: the overhead our loops are held to


def gen(seed):
    return torch.Generator().manual_seed(seed)


class Clock:
    """Accumulates the time spent inside wrapped calls."""

    def __init__(self):
        self.score = self.noise = 0.0

    def wrap_score(self, fn):
        def timed(*args):
            t0 = time.perf_counter()
            out = fn(*args)
            self.score += time.perf_counter() - t0
            return out
        return timed

    @contextlib.contextmanager
    def patch_noise(self, module, name):
        """Time every call of ``module.name`` (the function a sampler draws its noise with)."""
        original = getattr(module, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            self.noise += time.perf_counter() - t0
            return out

        setattr(module, name, timed)
        try:
            yield
        finally:
            setattr(module, name, original)


def measure(run, score, noise_site=(sds, "gaussian_like"), budget=3.0):
    """Wall time of ``run(score)`` and its floor (score + noise time in place), each the best of
    several repeats: as many as fit in about ``budget`` seconds, at least 3 and at most 15.

    ``run(score_fn)`` performs one sampling run and returns ``(x, nfe)``.  Plain and
    instrumented runs alternate so that a burst of load on the machine hits both alike.
    """
    t0 = time.perf_counter()
    run(score)  # warm-up, and the length of one run
    repeat = max(3, min(15, math.ceil(budget / (2 * (time.perf_counter() - t0)))))
    wall, floor, score_s, out = math.inf, math.inf, math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run(score)
        wall = min(wall, time.perf_counter() - t0)
        clock = Clock()
        with clock.patch_noise(*noise_site) if noise_site else contextlib.nullcontext():
            run(clock.wrap_score(score))
        if clock.score + clock.noise < floor:
            floor, score_s = clock.score + clock.noise, clock.score
    x, nfe = out
    return dict(wall=wall, floor=floor, score=score_s, noise=floor - score_s, x=x, nfe=nfe)


def sw_to_data(x, data, seed):
    """SW of x to a fresh exact sample set of the same size."""
    return sliced_wasserstein(x, data.sample(x.shape[0], generator=gen(seed)), generator=gen(seed + 1))


def ours(sde, x_T):
    """(label, own loop?, run) for each of our samplers; ``run(score_fn) -> (x, nfe)``.

    ``own`` is False for the adaptive solvers, whose steps are scipy's or torchdiffeq's code.
    """
    def make(sampler, **kw):
        def run(score):
            st = {}
            x = sampler(score, x_T, sde, stats=st, **kw)
            return x, st["nfe"]
        return run

    return [
        ("Euler-Maruyama, 500 steps", True, make(sample_euler_maruyama, n_steps=500, generator=1)),
        ("reverse diffusion, 500 steps", True, make(sample_reverse_diffusion, n_steps=500, generator=1)),
        ("PC (RD + Langevin), 250 steps", True, make(sample_pc, n_steps=250, snr=0.16, generator=1)),
        ("ODE Euler, 200 steps", True, make(sample_probability_flow, n_steps=200, method="euler")),
        ("ODE Heun, 100 steps", True, make(sample_probability_flow, n_steps=100, method="heun")),
        ("ODE RK45 (scipy), tol 1e-5", False, make(sample_probability_flow_adaptive, rtol=1e-5, atol=1e-5)),
        ("ODE dopri5 (torchdiffeq), tol 1e-5", False, make(sample_probability_flow_adaptive, solver="torchdiffeq",
                                                            rtol=1e-5, atol=1e-5)),
        ("Heun-Karras rho=7, 10 steps", True, make(sample_heun_karras, n_steps=10)),
        ("DPM-Solver-2, 10 steps", True, make(sample_dpm_solver_2, n_steps=10)),
        ("DPM-Solver-2 rho=7, 10 steps", True, make(sample_dpm_solver_2, n_steps=10, spacing="karras")),
    ]


def diffusers_pc(noised, n_steps, x_T, snr=0.16, sigma_min=0.01, sigma_max=50.0):
    """diffusers' ScoreSdeVeScheduler loop (as in its ScoreSdeVePipeline); ``noised(x, sigma)`` is the model."""
    from diffusers import ScoreSdeVeScheduler

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


def k_diffusion_runs(ks, x_T, n_steps=10, sigma_min=0.01, sigma_max=50.0):  # pragma: no cover - optional
    """(label, run) for k-diffusion's euler, heun and dpm_2 on the Karras sigmas; ``run(noised) -> (x, nfe)``."""
    sigmas = ks.get_sigmas_karras(n_steps, sigma_min, sigma_max, rho=7.0)

    def make(name):
        def run(noised):
            nfe = [0]

            def denoiser(x, sigma):  # k-diffusion's model: D(x; sigma) = x + sigma^2 score(x, sigma)
                nfe[0] += 1
                s = float(sigma.reshape(-1)[0])
                return x + s * s * noised(x, s)

            x = getattr(ks, name)(denoiser, x_T.clone(), sigmas, disable=True)
            return x, nfe[0]
        return run

    return [(f"k-diffusion {name}, {n_steps} steps", make(name))
            for name in ("sample_euler", "sample_heun", "sample_dpm_2")]


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
    header = (f"{'SDE':3s} {'N':>7s}  {'sampler':38s} {'NFE':>5s} {'wall ms':>8s} {'score ms':>8s} "
              f"{'noise ms':>8s} {'wall/score':>10s} {'wall/floor':>10s} {'SW':>6s}")
    print(header)
    print("-" * len(header))
    misses, vs_diffusers = [], None
    for sde_name, sde in (("VP", VPSDE()), ("VE", VESDE(0.01, 50.0))):
        score = exact_score_fn(sde, data, cache_size=8)
        for n in sizes:
            x_T = sde.prior_sampling((n, 2), generator=gen(0))
            # SW between two exact sets fluctuates a lot (mode weights are binomial): mean +- std of 5 pairs
            sw_floor = sliced_wasserstein_floor(data, n, n_repeats=5, generator=gen(3))
            rows = []
            for label, own, run in ours(sde, x_T):
                rows.append((label, own, measure(run, score)))
            if sde_name == "VE":
                noised = sl.noised_score(data, cache_size=4096)
                try:
                    import diffusers.schedulers.scheduling_sde_ve as dsv
                except ImportError:
                    rows.append(("diffusers: not installed (skipped)", False, None))
                else:
                    m = measure(lambda sc, x_T=x_T: diffusers_pc(sc, 250, x_T), noised,
                                noise_site=(dsv, "randn_tensor"))
                    rows.append(("diffusers ScoreSdeVeScheduler PC, 250", False, m))
                    ours_pc = next(r for lab, _, r in rows if lab.startswith("PC"))
                    if n == sizes[0]:
                        vs_diffusers = (m["wall"] / ours_pc["wall"], ours_pc["nfe"], m["nfe"])
                if ks is not None:  # pragma: no cover - optional
                    for label, run in k_diffusion_runs(ks, x_T):
                        rows.append((label, False, measure(run, noised, noise_site=None)))
            for label, own, m in rows:
                if m is None:
                    print(f"{sde_name:3s} {n:7d}  {label:38s}")
                    continue
                sw = sw_to_data(m["x"], data, seed=10)
                ratio = m["wall"] / m["floor"]
                flag = ""
                if own and ratio > TARGET:
                    flag = "  > target"
                    misses.append(f"{sde_name} N={n} {label}: {ratio:.2f}")
                print(f"{sde_name:3s} {n:7d}  {label:38s} {m['nfe']:5d} {m['wall'] * 1e3:8.1f} "
                      f"{m['score'] * 1e3:8.1f} {m['noise'] * 1e3:8.1f} {m['wall'] / m['score']:10.2f} "
                      f"{ratio:10.2f} {sw:6.3f}{flag}")
            print(f"{'':12s} SW floor (two exact sets of {n}): {sw_floor[0]:.3f} +- {sw_floor[1]:.3f}")
    if ks is None:
        print(f"\nk-diffusion: skipped ({ks_reason}).")
    print(f"\nfloor = time inside score evaluations + Gaussian draws, measured in place; target for our own "
          f"loops: wall/floor <= {TARGET}.")
    if misses:
        print("Above the target: " + "; ".join(misses))
    else:
        print("Every one of our own sampling loops is within the target.")
    print("The adaptive solvers (scipy, torchdiffeq) spend the rest in their own step arithmetic and "
          "numpy <-> torch copies (scipy); they are reported, not targeted.")
    if vs_diffusers is not None:
        print(f"VE PC at {vs_diffusers[1]} NFE: ours is {vs_diffusers[0]:.2f}x the throughput of diffusers' "
              f"ScoreSdeVeScheduler ({vs_diffusers[2]} NFE).  diffusers runs the corrector before the predictor "
              "(as the paper's code) on the geometric sigma of the VE SDE; ours runs predictor then corrector "
              "(the paper's Algorithm 1).")


if __name__ == "__main__":
    main()
