"""How fast are the Langevin samplers on exact scores? (scorelab.samplers, sections 4.1.2 and 4.3.2)

For 10k particles in 2-D it times ``sample_langevin`` (ULA), ``sample_mala`` and
``sample_annealed_langevin`` on exact mixture scores and prints, per sampler: time per step,
nanoseconds per particle-step, score evaluations (NFE) per step, and the overhead of the
sampler over the bare cost of its score evaluations (a hand-written loop that only calls the
score and adds the noise).  A small overhead means the time is spent in the score, where it
belongs; the chapters' experiments (1,280 to 10k particles, ~1,000 steps) then run in
well under a second each.

    python benchmarks/bench_samplers.py
"""

import math
import time

import torch

import scorelab as sl
from scorelab.samplers import geometric_sigmas, sample_annealed_langevin, sample_langevin, sample_mala

N = 10_000
N_STEPS = 100


def best_of(fns, repeat=5):
    """Minimum wall time of each callable, measured interleaved (round-robin) so that a load spike
    from other processes hits every candidate alike instead of one of them."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def bare_ula(score_fn, x, eps, n_steps, g):
    """The update with nothing around it: the floor any ULA implementation pays."""
    c = math.sqrt(2 * eps)
    for _ in range(n_steps):
        x = x + eps * score_fn(x) + c * torch.randn(x.shape, generator=g)
    return x


def time_target(name, dist, rows, costs):
    """Time the three samplers, the bare loop and the target's score and log-density on ``dist``."""
    x0 = dist.sample(N, generator=0)
    g = torch.Generator()
    sigmas = geometric_sigmas(10.0, 0.1, 10)
    noised = sl.noised_score(dist)
    st_ula, st_mala, st_ann = {}, {}, {}
    t_bare, t_ula, t_mala, t_ann, t_score, t_logp = best_of([
        lambda: bare_ula(dist.score, x0, 0.01, N_STEPS, g.manual_seed(1)),
        lambda: sample_langevin(dist.score, x0, 0.01, N_STEPS, generator=1, stats=st_ula),
        # MALA: one score and one log-density per proposal, plus the accept/reject bookkeeping.
        lambda: sample_mala(dist.score, dist.log_prob, x0, 0.01, N_STEPS, generator=1, stats=st_mala),
        # Annealed: 10 levels x N_STEPS/10 steps on the exact noised score, plus the denoising step.
        lambda: sample_annealed_langevin(noised, x0, sigmas, eps=1e-4, n_steps_each=N_STEPS // 10,
                                         generator=1, stats=st_ann),
        lambda: [dist.score(x0) for _ in range(N_STEPS)],
        lambda: [dist.log_prob(x0) for _ in range(N_STEPS)],
    ])
    costs.append((name, t_score / N_STEPS, t_logp / N_STEPS))
    rows.append((name, "ULA", t_ula, st_ula["nfe"], N_STEPS, t_bare))
    rows.append((name, f"MALA (acc {st_mala['acceptance_rate']:.2f})", t_mala, st_mala["nfe"], N_STEPS, t_bare))
    rows.append((name, "annealed (L=10)", t_ann, st_ann["nfe"], N_STEPS, t_bare))


def main():
    torch.set_num_threads(2)
    rows, costs = [], []
    for name, dist in [("8 Gaussians", sl.eight_gaussians()), ("Song-Ermon", sl.song_ermon_mixture())]:
        time_target(name, dist, rows, costs)

    print(f"{N} particles in 2-D, {N_STEPS} steps per run, best of 5 (interleaved), "
          f"{torch.get_num_threads()} threads\n")
    print(f"{'target':12s} {'sampler':18s} {'ms/step':>8s} {'ns/particle-step':>17s} {'NFE':>5s} "
          f"{'NFE/step':>8s} {'vs bare ULA':>11s}")
    for target, sampler, t, nfe, steps, t_bare in rows:
        per_step = t / steps
        print(f"{target:12s} {sampler:18s} {per_step * 1e3:8.3f} {per_step / N * 1e9:17.1f} {nfe:5d} "
              f"{nfe / steps:8.3f} {t / t_bare:10.2f}x")
    print(f"\n{'target':12s} {'score ms/call':>14s} {'log_prob ms/call':>17s}   (clean target, {N} points)")
    for name, t_score, t_logp in costs:
        print(f"{name:12s} {t_score * 1e3:14.3f} {t_logp * 1e3:17.3f}")
    print("\n'vs bare ULA' is the run time over a bare loop x + eps s(x) + sqrt(2 eps) z with the clean score."
          "\nULA should sit near 1x (the checks are per call, not per particle).  MALA adds one log_prob"
          "\nper step (see the second table), the uniforms and three torch.where, so it costs a few bare"
          "\nsteps.  Annealed Langevin calls the noised scores, whose cost differs from the clean one"
          "\n(wide noised components give fewer float32 underflows in the softmax), so its ratio can be < 1.")


if __name__ == "__main__":
    main()
