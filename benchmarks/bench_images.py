"""Image score models: training and sampling throughput, and the time to reach the quality target.

Three tables, on a GPU when one is visible (bf16 autocast and torch.compile as in training),
otherwise on the CPU:

1. training images per second of ``train_score_model`` for the MLP and the U-Net at 8x8 and 28x28;
2. sampling images per second per sampler (U-Net at 28x28, untrained: the cost does not depend on the weights);
3. MNIST-5k end to end: train the U-Net, every ``--eval-every`` steps sample 1,000 digits
   (DPM-Solver-2, 20 steps) and measure them with the classifier of ``scorelab.image_metrics``;
   print the time at which the confident share first reaches 90% and the Frechet distance 3x
   its floor (the GPU targets), and the held-out bits/dim at the end.

    python benchmarks/bench_images.py            # GPU: about 10 minutes
    python benchmarks/bench_images.py --quick    # CPU: tiny sizes, a minute or two (exercises every path)
"""

import argparse
import time

import torch

from scorelab.datasets import load_digits, load_mnist_5k, split
from scorelab.image_likelihood import image_bits_per_dim
from scorelab.image_metrics import QualityReference, train_classifier
from scorelab.image_sampling import sample_images
from scorelab.image_training import TrainConfig, build_model, default_device, train_score_model
from scorelab.sdes import VPSDE


def training_rate(kind, data, sde, device, steps, batch, sizes, amp, compile_):
    model = build_model(kind, sde, data.shape, seed=0, **sizes)
    warm = TrainConfig(n_steps=min(steps, 5), batch_size=batch, warmup_steps=1, amp=amp, compile=compile_)
    train_score_model(model, data, sde, warm, device=device, progress=False)  # compile and caches
    cfg = TrainConfig(n_steps=steps, batch_size=batch, warmup_steps=1, amp=amp, compile=compile_)
    if device.type == "cuda":
        torch.cuda.synchronize()
    run = train_score_model(model, data, sde, cfg, device=device, progress=False)
    return run.images_per_second


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes on any device (a smoke run)")
    p.add_argument("--device", default=None)
    p.add_argument("--minutes", type=float, default=10.0, help="time limit of the end-to-end run")
    p.add_argument("--eval-every", type=int, default=1000)
    a = p.parse_args(argv)
    device = torch.device(a.device) if a.device else default_device()
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(max(1, torch.get_num_threads()))
    quick = a.quick
    amp = compile_ = "auto"
    sde = VPSDE(0.1, 20.0)
    digits, _ = split(load_digits(), 360, seed=0)
    mnist = load_mnist_5k()
    mnist_train, mnist_held = split(mnist, 1000, seed=0)
    print(f"device: {torch.cuda.get_device_name(device) if gpu else 'cpu'}; torch {torch.__version__}; "
          f"{'quick' if quick else 'full'} settings")

    print("\n1. training images/s")
    steps = 10 if quick else 200
    batch = 32 if quick else 256
    rows = [("mlp", digits, dict(width=256, depth=3)), ("unet", digits, dict(channels=16 if quick else 32)),
            ("mlp", mnist_train, dict(width=512, depth=3)),
            ("unet", mnist_train, dict(channels=16) if quick else dict(channels=64, n_res_blocks=2))]
    for kind, data, sizes in rows:
        rate = training_rate(kind, data, sde, device, steps, batch, sizes, amp, compile_)
        print(f"  {kind:5s} {data.name:9s} {str(data.shape):12s} batch {batch:4d}: {rate:10.0f} images/s")

    print("\n2. sampling images/s (U-Net, 28x28)")
    unet = build_model("unet", sde, mnist.shape, seed=0, **(dict(channels=16) if quick else dict(channels=64,
                                                                                              n_res_blocks=2)))
    with torch.no_grad():  # the read-out starts at zero; a little weight makes the score non-zero
        torch.nn.init.normal_(unet.conv_out.weight, std=1e-2, generator=torch.Generator().manual_seed(0))
    unet.to(device).eval()
    n = 16 if quick else 1000
    for name, kw in (("euler_maruyama", dict(n_steps=20 if quick else 500)), ("pc", dict(n_steps=10 if quick else 250)),
                     ("probability_flow", dict(n_steps=10 if quick else 50)),
                     ("heun_karras", dict(n_steps=5 if quick else 10)),
                     ("dpm_solver_2", dict(n_steps=5 if quick else 10))):
        st = {}
        sample_images(unet, sde, n, mnist.shape, sampler=name, device=device, batch_size=n, stats=st, **kw)
        print(f"  {name:17s} NFE {st['nfe']:4d}: {n / st['seconds']:9.1f} images/s")

    print("\n3. MNIST-5k end to end (U-Net): time to the targets")
    start = time.perf_counter()
    clf, _ = train_classifier(mnist_train, n_steps=100 if quick else 3000, channels=16 if quick else 32, seed=0,
                              lr=3e-3, device=device)
    ref = QualityReference(clf, mnist_train, mnist_held)
    print(f"  classifier: accuracy {ref.accuracy:.3f}, ceiling {ref.ceiling:.3f}, floor {ref.floor:.3f} "
          f"({time.perf_counter() - start:.0f} s)")
    model = build_model("unet", sde, mnist.shape, seed=0, data_std=0.6,
                        **(dict(channels=16) if quick else dict(channels=64, n_res_blocks=2)))
    every = 5 if quick else a.eval_every
    total = 10 if quick else 40 * every
    cfg = TrainConfig(n_steps=total, batch_size=32 if quick else 256, lr=8e-4, warmup_steps=2 if quick else 500,
                      ema_decay=0.999 if quick else 0.9995, seed=0)
    reached = {}
    latest = {}

    def check(info):
        step = info["i"] + 1
        if step % every:
            return
        latest["ema"] = info["ema"]
        x = sample_images(info["ema"], sde, 1000, mnist.shape, sampler="dpm_solver_2", n_steps=20,
                          device=device, batch_size=1000, seed=1)
        r = ref.evaluate(x)
        elapsed = time.perf_counter() - start
        print(f"  step {step:6d} {elapsed:7.0f} s: confident {r['confident_share']:.3f} "
              f"({r['share_of_ceiling']:.0%} of ceiling), Frechet {r['frechet_over_floor']:.2f}x floor")
        if r["confident_share"] >= 0.9:
            reached.setdefault("confident share >= 90%", elapsed)
        if r["frechet_over_floor"] <= 3:
            reached.setdefault("Frechet <= 3x floor", elapsed)
        if len(reached) == 2 or elapsed > 60 * a.minutes:
            raise KeyboardInterrupt

    try:
        ema = train_score_model(model, mnist_train, sde, cfg, device=device, progress=False, callback=check).ema
    except KeyboardInterrupt:  # a target reached, or out of time
        ema = latest["ema"]
    for k in ("confident share >= 90%", "Frechet <= 3x floor"):
        print(f"  {k}: " + (f"{reached[k]:.0f} s" if k in reached else "not reached"))
    n_bpd = 20 if quick else 1000
    bpd = image_bits_per_dim(ema, mnist_held.images[:n_bpd], 256, sde, n_dequant=1 if quick else 3, device=device,
                             generator=torch.Generator().manual_seed(0), rtol=1e-4 if quick else 1e-5,
                             atol=1e-4 if quick else 1e-5)
    print(f"  held-out bits/dim {float(bpd.mean()):.3f} ({n_bpd} images); whole pipeline "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
