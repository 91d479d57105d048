"""How fast is an exact mixture score? Every sampler pays for it at every step.

Times GaussianMixture.score on the 8-Gaussian ring (and larger mixtures) against a
straightforward (N, K, d) implementation, and prints points per second. The goal: the
8-Gaussian ring at 10k points in <= 0.5 ms (>= 20 M points/s) on 2 CPU cores.

    python benchmarks/bench_distributions.py
"""

import time
from functools import partial

import torch

import scorelab as sl


def naive_score(means, var, logw, x):
    """Reference layout: (N, K, d) differences, softmax over the last-but-one axis."""
    diff = means[None] - x[:, None]  # (N, K, d)
    logits = logw - 0.5 * (diff**2).sum(-1) / var  # (N, K)
    r = torch.softmax(logits, -1)
    return (r[..., None] * diff).sum(1) / var


def timeit(fn, repeat=200, warmup=20):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t) / repeat)
    return best


def main():
    torch.set_num_threads(2)
    rows = []
    for name, dist in [("8 Gaussians", sl.eight_gaussians()), ("ring (64)", sl.ring()),
                       ("Song-Ermon (2)", sl.song_ermon_mixture())]:
        for n in (10_000, 100_000):
            x = dist.sample(n, generator=0)
            t = timeit(partial(dist.score, x), repeat=50 if n > 10_000 else 200)
            m = dist._p.master
            means, var, logw = m["means"].float(), float(m["var"][0]), m["log_weights"].float()
            torch.testing.assert_close(naive_score(means, var, logw, x), dist.score(x), rtol=1e-4, atol=1e-3)
            tn = timeit(partial(naive_score, means, var, logw, x), repeat=50 if n > 10_000 else 200)
            rows.append((name, n, t * 1e3, n / t / 1e6, tn * 1e3, n / tn / 1e6))
    print(f"{'distribution':16s} {'N':>8s} {'score ms':>9s} {'M pts/s':>8s} {'naive ms':>9s} {'M pts/s':>8s}")
    for r in rows:
        print(f"{r[0]:16s} {r[1]:8d} {r[2]:9.3f} {r[3]:8.1f} {r[4]:9.3f} {r[5]:8.1f}")
    t8 = rows[0][2]
    print(f"\n8 Gaussians at 10k points: {t8:.3f} ms (target <= 0.5 ms): {'OK' if t8 <= 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
