"""What does one training step of each score-matching loss cost, and how does it grow with d?

Times loss + backward (one Adam step's worth of autograd work) of ``scorelab.losses`` on an
``MLPScore`` (hidden 128, depth 3) with a batch of 256 points:

1. every loss at d = 2 (ESM, DSM, SSM, SSM-VR, SSM with Rademacher directions, NCSN);
2. ESM against SSM and DSM for d from 2 to 128: ESM's exact trace needs d backward passes
   (section 4.2.1), SSM one vector-Jacobian product whatever d is (4.2.3), DSM none (4.2.2).
   The log-log slope of time against d is printed: about 1 for ESM, about 0 for the others.

    python benchmarks/bench_losses.py            # about 30 s on one core
"""

import math
import time

import torch

from scorelab.losses import (
    denoising_score_matching_loss,
    explicit_score_matching_loss,
    ncsn_loss,
    sliced_score_matching_loss,
)
from scorelab.nets import MLPScore, NoiseConditionalScoreNet

BATCH = 256
SIGMAS = torch.logspace(0, -2, 10)


def step_time(fn, min_time=0.3, max_repeat=50):
    """Median seconds of ``fn()`` (loss + backward) after one warm-up call, at most ~min_time of repeats."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeat and (len(times) < 3 or time.perf_counter() - start < min_time):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def backward_of(loss_builder, model):
    def run():
        model.zero_grad(set_to_none=True)
        loss_builder().backward()
    return run


def losses_at(d, which):
    net = MLPScore(d, seed=0)
    x = torch.randn(BATCH, d, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    table = {
        "ESM (exact trace)": lambda: explicit_score_matching_loss(net, x),
        "DSM (sigma=0.1)": lambda: denoising_score_matching_loss(net, x, 0.1, generator=g),
        "SSM (gaussian)": lambda: sliced_score_matching_loss(net, x, generator=g),
        "SSM-VR (gaussian)": lambda: sliced_score_matching_loss(net, x, variance_reduced=True, generator=g),
        "SSM (rademacher)": lambda: sliced_score_matching_loss(net, x, projection="rademacher", generator=g),
    }
    out = {name: step_time(backward_of(table[name], net)) for name in which}
    return out


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, batch {BATCH}, MLPScore(hidden=128, depth=3)\n")

    names = ["ESM (exact trace)", "DSM (sigma=0.1)", "SSM (gaussian)", "SSM-VR (gaussian)", "SSM (rademacher)"]
    at2 = losses_at(2, names)
    cond = NoiseConditionalScoreNet(2, SIGMAS, seed=0)
    x2 = torch.randn(BATCH, 2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    at2["NCSN (10 sigmas)"] = step_time(backward_of(lambda: ncsn_loss(cond, x2, SIGMAS, generator=g), cond))
    print("1) one loss + backward at d = 2")
    print(f"{'loss':20s} {'ms':>8s}")
    for name, t in at2.items():
        print(f"{name:20s} {1e3 * t:8.2f}")

    dims = [2, 4, 8, 16, 32, 64, 128]
    compare = ["ESM (exact trace)", "SSM-VR (gaussian)", "DSM (sigma=0.1)"]
    rows = {d: losses_at(d, compare) for d in dims}
    print("\n2) loss + backward against dimension (ms)")
    print(f"{'d':>5s} " + " ".join(f"{n:>20s}" for n in compare) + f" {'ESM/SSM':>8s}")
    for d in dims:
        r = rows[d]
        print(f"{d:5d} " + " ".join(f"{1e3 * r[n]:20.2f}" for n in compare)
              + f" {r[compare[0]] / r[compare[1]]:8.1f}")
    print("\nlog-log slope of time against d over d = 16..128 (1: linear, 0: constant)")
    big = [d for d in dims if d >= 16]
    lx = torch.tensor([math.log(d) for d in big])
    for n in compare:
        ly = torch.tensor([math.log(rows[d][n]) for d in big])
        slope = float(((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum())
        print(f"  {n:20s} {slope:5.2f}")


if __name__ == "__main__":
    main()
