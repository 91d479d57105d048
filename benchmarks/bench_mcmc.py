"""Effective samples per score evaluation and per second for every Langevin-type sampler (4.4).

Exercise 4.4 asks which Langevin variant is most efficient.  This script answers it on two
ill-conditioned Gaussians, where the truth is known exactly:

- 2-D: variances 0.16 and 4 (condition number 25), rotated by 35 degrees (chapter 4.4's target);
- 50-D: variances log-spaced from 0.1 to 10 (condition number 100), randomly rotated.

Every sampler starts from exact samples (no burn-in), runs N independent chains on the same
budget of score evaluations (NFE) and is scored by its *worst* statistic: the smallest ESS
over the principal coordinates ``y_i`` and their squares ``y_i^2`` (Geyer's initial positive
sequence, ``monotone=False`` because kinetic Langevin is not reversible).  The last column is
the largest relative error of a principal variance, so that a fast but biased sampler (ULA)
shows its price.  Step sizes come from simple rules stated next to each sampler, with the
Metropolis samplers' steps picked from a grid by a short pilot run (target acceptance in
brackets); preconditioning uses the exact covariance (an oracle: the best case).

    python benchmarks/bench_mcmc.py            # 10-20 s on one core
    SCORELAB_FAST=1 python benchmarks/bench_mcmc.py
"""

from __future__ import annotations

import math
import time

import torch

import scorelab as sl
from scorelab.diagnostics import effective_sample_size
from scorelab.mcmc import sample_hmc, sample_kinetic_langevin, sample_preconditioned_langevin
from scorelab.samplers import sample_langevin, sample_mala
from scorelab.utils import fast_or_full, make_generator


def rotated_gaussian(variances: torch.Tensor, seed: int):
    d = variances.numel()
    if d == 2:
        a = math.radians(35)
        Q = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    else:
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=make_generator(seed), dtype=torch.float64))
    cov = Q @ torch.diag(variances) @ Q.T
    return sl.Gaussian(torch.zeros(d, dtype=torch.float64), 0.5 * (cov + cov.T)), Q


def pick_step(run_pilot, grid, target_acceptance):
    """The step in ``grid`` whose pilot acceptance rate is closest to ``target_acceptance``."""
    best, best_gap = grid[0], float("inf")
    for eps in grid:
        st = {}
        run_pilot(eps, st)
        gap = abs(st["acceptance_rate"] - target_acceptance)
        if gap < best_gap:
            best, best_gap = eps, gap
    return best


def measure(run, Q, variances, n_chains):
    """Run a sampler with a recording callback; return (ESS min, NFE, seconds, acceptance, var bias)."""
    frames, st = [], {}
    t0 = time.perf_counter()
    run(lambda info: frames.append(info["x"] @ Q), st)
    seconds = time.perf_counter() - t0
    y = torch.stack(frames)                                   # (T, N, d) principal coordinates
    ess = effective_sample_size(torch.cat([y, y * y], -1), monotone=False)
    bias = float((y.square().mean((0, 1)) / variances - 1).abs().max())
    return float(ess.min()), st["nfe"], seconds, st.get("acceptance_rate", float("nan")), bias


def bench(name, variances, budget, n_chains, seed):
    target, Q = rotated_gaussian(variances, seed)
    d = variances.numel()
    lam_min, lam_max = float(variances.min()), float(variances.max())
    x0 = target.sample(n_chains, generator=make_generator(seed + 1))
    cov = target.covariance_matrix
    g = lambda: make_generator(seed + 2)  # noqa: E731 - the same noise stream for every sampler
    pilot = 100

    # Metropolis samplers: step picked by a short pilot run; grids relative to the natural scale
    eps_mala = pick_step(lambda e, st: sample_mala(target.score, target.log_prob, x0, e, pilot, generator=g(),
                                                   stats=st),
                         [lam_min * f for f in (0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0)], 0.57)
    eps_pre = pick_step(lambda e, st: sample_preconditioned_langevin(target.score, x0, e, pilot, preconditioner=cov,
                                                                     log_prob_fn=target.log_prob, generator=g(),
                                                                     stats=st),
                        [0.1, 0.2, 0.4, 0.7, 1.0, 1.5], 0.57)
    h_hmc = pick_step(lambda e, st: sample_hmc(target.score, target.log_prob, x0, e, 5, pilot // 5, generator=g(),
                                               stats=st),
                      [math.sqrt(lam_min) * f for f in (0.1, 0.2, 0.4, 0.7, 1.0, 1.4)], 0.75)
    # trajectory length L h ~ 1.5 sqrt(lam_max): about a quarter period of the widest axis
    L_hmc = max(1, min(100, round(1.5 * math.sqrt(lam_max) / h_hmc)))
    eps_ula = 0.5 * lam_min                                             # bias on the narrowest axis: 1/3
    h_kin = math.sqrt(lam_min)                                          # half the leapfrog stability limit
    gamma = 1.0 / math.sqrt(lam_max)                                    # half the critical damping of the widest axis

    samplers = {
        f"ULA (eps = lam_min/2 = {eps_ula:.3g})":
            lambda cb, st: sample_langevin(target.score, x0, eps_ula, budget, generator=g(), callback=cb, stats=st),
        f"MALA (eps = {eps_mala:.3g}) [0.57]":
            lambda cb, st: sample_mala(target.score, target.log_prob, x0, eps_mala, budget, generator=g(),
                                       callback=cb, stats=st),
        f"precond. MALA, G = Sigma (eps = {eps_pre:.3g}) [0.57]":
            lambda cb, st: sample_preconditioned_langevin(target.score, x0, eps_pre, budget, preconditioner=cov,
                                                          log_prob_fn=target.log_prob, generator=g(), callback=cb,
                                                          stats=st),
        f"kinetic BAOAB (h = {h_kin:.3g}, gamma = {gamma:.3g})":
            lambda cb, st: sample_kinetic_langevin(target.score, x0, h_kin, budget, friction=gamma, generator=g(),
                                                   callback=cb, stats=st),
        f"HMC (h = {h_hmc:.3g}, L = {L_hmc}, jitter 0.2) [0.75]":
            lambda cb, st: sample_hmc(target.score, target.log_prob, x0, h_hmc, L_hmc, budget // L_hmc,
                                      step_jitter=0.2, generator=g(), callback=cb, stats=st),
    }
    rows = []
    for label, run in samplers.items():
        ess, nfe, seconds, acc, bias = measure(run, Q, variances, n_chains)
        rows.append((name, d, label, nfe, acc, ess, 1000 * ess / (n_chains * nfe), ess / seconds, bias))
    return rows


def main():
    torch.set_num_threads(1)
    n_chains = 20
    rows = []
    rows += bench("2-D, cond 25", torch.tensor([0.16, 4.0], dtype=torch.float64), fast_or_full(1_000, 4_000),
                  n_chains, seed=0)
    rows += bench("50-D, cond 100", torch.logspace(-1, 1, 50, dtype=torch.float64), fast_or_full(1_000, 6_000),
                  n_chains, seed=10)
    header = (f"{'target':15s} {'sampler':50s} {'NFE':>6s} {'accept':>6s} {'min ESS':>8s} "
              f"{'ESS/1k NFE':>10s} {'ESS/s':>8s} {'var bias':>8s}")
    print(f"{n_chains} chains from exact samples; ESS = min over principal coordinates and their squares.\n")
    print(header)
    print("-" * len(header))
    last = None
    for r in rows:
        if last is not None and r[0] != last:
            print()
        last = r[0]
        acc = "-" if math.isnan(r[4]) else f"{r[4]:.2f}"
        print(f"{r[0]:15s} {r[2]:50s} {r[3]:6d} {acc:>6s} {r[5]:8.0f} {r[6]:10.2f} {r[7]:8.0f} {r[8]:8.3f}")


if __name__ == "__main__":
    main()
