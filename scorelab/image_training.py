"""Training a score model on images: seeded, resumable, on a CPU, a GPU or several (image chapters).

``train_score_model(model, images, sde, config)`` minimises the continuous-time denoising
score-matching objective of section 4.5 (``scorelab.sde_nets.sde_score_matching_loss``) with
Adam and everything a real run needs:

- **Seeded, and stateless in the step.**  Step ``i`` draws its minibatch, its dequantisation
  noise, its times and its Gaussian noise from a CPU generator seeded by ``(seed, i)`` alone
  (the minibatches walk through one seeded permutation per epoch), so a run resumed at step
  ``i`` draws exactly what the uninterrupted run drew, on any device.
- **EMA weights** with a warm-up, ``decay_i = min(decay, (1 + i) / (10 + i))`` (the schedule of
  the score-SDE code), kept beside the trained weights; samplers use the EMA model.
- **Learning-rate warm-up** (linear) then constant or cosine decay; **gradient clipping** by norm.
- **Checkpoints** in a folder: ``model.safetensors`` and ``ema.safetensors`` (weights) and
  ``state.pt`` (optimiser state, step, loss history, random state, configuration), written every
  ``checkpoint_every`` steps, at the end, and when the run is interrupted (KeyboardInterrupt).
  ``resume=True`` continues from the folder's checkpoint; an interrupted run resumed to the end
  has the same weights, bit for bit, as one that never stopped (on the same device).
- **On a GPU**: bf16 autocast around the network (the U-Net keeps its time embedding and output
  scaling in float32; the loss is computed in float32) and optionally ``torch.compile``.
- **Several processes**: run the same script under ``torchrun``; ``init_distributed()`` joins the
  process group (NCCL on GPUs, gloo on CPUs) and the model is wrapped in
  ``DistributedDataParallel``.  Every process draws the same global batch and keeps its share,
  so N processes make the same update as one process on the whole batch.

``python -m scorelab.image_training --help`` trains from the command line (and under torchrun).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ._checks import check_count, check_positive
from .losses import sde_score_matching_loss
from .sdes import SDE

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EMA",
    "train_score_model",
    "step_generator",
    "minibatch_indices",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "init_distributed",
    "default_device",
    "suggest_sigma_max",
    "build_model",
    "main",
]

_MODEL_FILE, _EMA_FILE, _STATE_FILE = "model.safetensors", "ema.safetensors", "state.pt"


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainConfig:
    """Settings of one training run (all plain numbers, saved in the checkpoint).

    Attributes:
        n_steps: optimiser steps.
        batch_size: global minibatch (split across processes under torchrun).
        lr: peak Adam learning rate, reached after ``warmup_steps`` linear steps.
        warmup_steps: steps of linear learning-rate warm-up from 0.
        lr_schedule: ``"constant"`` after the warm-up, or ``"cosine"`` decay to 0 at ``n_steps``.
        ema_decay: EMA decay (0 turns the EMA into a copy of the weights).
        ema_warmup: use ``min(ema_decay, (1 + i) / (10 + i))`` at step i.
        grad_clip: clip the gradient's global norm to this value (None: no clipping).
        seed: drives every random draw of the run.
        t_eps: smallest time of the loss.
        dequantize: train on uniformly dequantised levels (a continuous density), else on bin centres.
        checkpoint_every: write a checkpoint every this many steps (None: only at the end and on interrupt).
        amp: bf16 autocast: ``"auto"`` (on CUDA only), True or False.
        compile: ``torch.compile`` the network: ``"auto"`` (on CUDA only), True or False.
    """

    n_steps: int
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    ema_decay: float = 0.999
    ema_warmup: bool = True
    grad_clip: float | None = 1.0
    seed: int = 0
    t_eps: float = 1e-5
    dequantize: bool = True
    checkpoint_every: int | None = None
    amp: bool | str = "auto"
    compile: bool | str = "auto"

    def __post_init__(self):
        check_count(self.n_steps, "n_steps", 0)
        check_count(self.batch_size, "batch_size", 1)
        check_positive(self.lr, "lr")
        check_count(self.warmup_steps, "warmup_steps", 0)
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule: expected 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay: expected a number in [0, 1), got {self.ema_decay!r}")
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")
        check_count(self.seed, "seed", 0)
        check_positive(self.t_eps, "t_eps")
        if self.checkpoint_every is not None:
            check_count(self.checkpoint_every, "checkpoint_every", 1)
        for name in ("amp", "compile"):
            if getattr(self, name) not in ("auto", True, False):
                raise ValueError(f"{name}: expected 'auto', True or False, got {getattr(self, name)!r}")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "cosine":
            span = max(self.n_steps - self.warmup_steps, 1)
            return self.lr * 0.5 * (1 + math.cos(math.pi * (step - self.warmup_steps) / span))
        return self.lr


@dataclass
class TrainResult:
    """What ``train_score_model`` returns.

    Attributes:
        losses: the loss of every step from 0 (a resumed run includes the steps before it).
        ema: the EMA model (a copy of the model's architecture with the averaged weights), eval mode.
        step: steps done.
        seconds: wall-clock time of this call's steps.
        images_per_second: global images per second over this call.
    """

    losses: list[float]
    ema: nn.Module
    step: int
    seconds: float = 0.0
    images_per_second: float = 0.0
    interrupted: bool = False
    extra: dict = field(default_factory=dict)


class EMA:
    """Exponential moving average of a model's parameters and buffers (Polyak averaging).

    ``update(model, step)`` sets ``ema <- d ema + (1 - d) weights`` with
    ``d = min(decay, (1 + step) / (10 + step))`` when ``warmup`` (the early averages would
    otherwise be dominated by the random initial weights).  ``module`` is the averaged model.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        self.decay, self.warmup = float(decay), bool(warmup)
        self.module = copy.deepcopy(_unwrap(model)).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        src = _unwrap(model).state_dict()
        for name, e in self.module.state_dict().items():
            v = src[name]
            if e.is_floating_point():
                e.lerp_(v.to(e.dtype), 1 - d)
            else:
                e.copy_(v)


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module) and not isinstance(model, EMA):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# -- randomness: stateless in the step ----------------------------------------------------

_GOLDEN = 0x9E3779B97F4A7C15


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded by ``(seed, step, stream)`` alone, independent of anything drawn before."""
    key = (seed * _GOLDEN + step * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB) % (2**63 - 1)
    return torch.Generator().manual_seed(key)


def minibatch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The indices of step ``step``'s minibatch: epochs walk through seeded permutations of ``range(n)``.

    With ``batch_size <= n`` each epoch has ``n // batch_size`` steps (the last partial batch is
    dropped); with ``batch_size > n`` the batch draws with replacement.
    """
    if batch_size > n:
        return torch.randint(n, (batch_size,), generator=step_generator(seed, step, 1))
    per_epoch = n // batch_size
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=step_generator(seed, epoch, 2))
    return perm[k * batch_size:(k + 1) * batch_size]


def _draw(levels: torch.Tensor, n_levels: int, config: TrainConfig, sde: SDE, step: int):
    """The global batch of step ``step``, in model space [-1, 1], with its times and noise (CPU, float32)."""
    idx = minibatch_indices(levels.shape[0], config.batch_size, config.seed, step)
    g = step_generator(config.seed, step, 3)
    k = levels[idx].to(torch.float32)
    u = torch.rand(k.shape, generator=g) if config.dequantize else torch.full_like(k, 0.5)
    x0 = 2 * (k + u) / n_levels - 1
    t = config.t_eps + (sde.T - config.t_eps) * torch.rand(x0.shape[0], generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return x0, t, eps


# -- distributed ----------------------------------------------------------------------

def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    NCCL and one GPU per process when CUDA is there, gloo on CPUs.  Without torchrun (no
    ``WORLD_SIZE``) it does nothing.  Returns ``(rank, world_size, device)``.
    """
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return 0, 1, default_device()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), device


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# -- checkpoints --------------------------------------------------------------------------

def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in _unwrap(module).state_dict().items()}


def save_checkpoint(folder, model: nn.Module, ema: EMA, optimizer, step: int, losses: list[float],
                    config: TrainConfig) -> Path:
    """Write ``model.safetensors``, ``ema.safetensors`` and ``state.pt`` into ``folder`` (atomically, state last)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"step": str(step)}
    for name, module in ((_MODEL_FILE, model), (_EMA_FILE, ema.module)):
        tmp = folder / (name + ".tmp")
        save_file(_cpu_state(module), str(tmp), metadata=meta)
        os.replace(tmp, folder / name)
    state = {
        "step": step,
        "losses": list(losses),
        "optimizer": optimizer.state_dict(),
        "config": asdict(config),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = folder / (_STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / _STATE_FILE)
    return folder


def load_weights(model: nn.Module, path, *, strict: bool = True) -> nn.Module:
    """Load a ``.safetensors`` file (or ``<folder>/ema.safetensors``) into ``model``; returns the model."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / _EMA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a .safetensors file or a checkpoint folder, got {path}")
    target = _unwrap(model)
    device = next(iter(target.state_dict().values())).device
    target.load_state_dict(load_file(str(path), device=str(device)), strict=strict)
    return model


def load_checkpoint(folder, model: nn.Module, ema: EMA | None = None, optimizer=None) -> dict:
    """Restore a checkpoint written by ``save_checkpoint``; returns ``state.pt``'s dict (step, losses, ...)."""
    folder = Path(folder)
    state_file = folder / _STATE_FILE
    if not state_file.is_file():
        raise FileNotFoundError(f"folder: no checkpoint in {folder} (expected {_MODEL_FILE}, {_EMA_FILE}, "
                                f"{_STATE_FILE})")
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    load_weights(model, folder / _MODEL_FILE)
    if ema is not None:
        load_weights(ema.module, folder / _EMA_FILE)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state


# -- the loop ---------------------------------------------------------------------------

def _flag(value, device: torch.device) -> bool:
    return device.type == "cuda" if value == "auto" else bool(value)


def _levels(images) -> tuple[torch.Tensor, int]:
    from .datasets import ImageData

    if isinstance(images, ImageData):
        return images.images, images.n_levels
    raise TypeError(f"images: expected an ImageData (scorelab.datasets), got {type(images).__name__}")


def train_score_model(model: nn.Module, images, sde: SDE, config: TrainConfig, *, checkpoint_dir=None,
                      resume: bool = False, device=None, progress: bool = True, callback=None) -> TrainResult:
    """Train ``model`` (a score network ``model(x, t)``) on ``images`` by denoising score matching (4.5.1).

    Args:
        model: e.g. ``scorelab.unet.UNet`` or ``FlatScoreNet``; moved to ``device`` and trained in place.
        images: an ``ImageData`` (the training split): integer levels, mapped to [-1, 1] per step.
        sde: the forward SDE of the loss.
        config: a ``TrainConfig``.
        checkpoint_dir: folder for checkpoints (None: none are written).
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        device: ``"cpu"``, ``"cuda"``, a ``torch.device``; default: the process's GPU under torchrun,
            else ``default_device()``.
        progress: a tqdm bar (first process only).
        callback: ``callback({"i": step, "loss": float, "lr": float, "model": model, "ema": ema_model})`` after
            each step;
            raising KeyboardInterrupt in it stops the run like Ctrl-C (a checkpoint is written).

    Returns:
        A ``TrainResult``; ``result.ema`` is the model to sample from.

    Raises:
        KeyboardInterrupt: re-raised after the checkpoint is written.
        FloatingPointError: the loss became NaN or infinite.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde: expected a scorelab SDE, got {type(sde).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected None or a callable taking a dict, got {type(callback).__name__}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume: needs checkpoint_dir, the folder of the run to continue")
    levels, n_levels = _levels(images)
    rank, world = _world()
    if config.batch_size % world:
        raise ValueError(f"batch_size: expected a multiple of the {world} processes, got {config.batch_size}")
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if world > 1 and torch.cuda.is_available() \
            else default_device()
    device = torch.device(device)
    use_amp = _flag(config.amp, device)
    model.to(device)

    ema = EMA(model, config.ema_decay, config.ema_warmup)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, losses = 0, []
    if resume and (Path(checkpoint_dir) / _STATE_FILE).is_file():
        state = load_checkpoint(checkpoint_dir, model, ema, optimizer)
        step, losses = int(state["step"]), list(state["losses"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if _flag(config.compile, device):
        net = torch.compile(net)

    def score_fn(x, t):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            s = net(x, t)
        return s.float()

    bar = None
    if progress and rank == 0 and step < config.n_steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.n_steps, initial=step, desc="train", leave=False)
    share = config.batch_size // world
    start_step, start = step, time.perf_counter()
    stop = _StopFlag()
    model.train()
    try:
        with stop:
            while step < config.n_steps:
                value, lr = _one_step(score_fn, model, ema, optimizer, config, sde, levels, n_levels, step,
                                      slice(rank * share, (rank + 1) * share), device, world)
                losses.append(value)
                step += 1
                if bar is not None:
                    bar.update(1)
                    if step % 50 == 0 or step == config.n_steps:
                        bar.set_postfix(loss=f"{value:.4g}")
                if checkpoint_dir is not None and config.checkpoint_every and rank == 0 \
                        and step % config.checkpoint_every == 0:
                    save_checkpoint(checkpoint_dir, model, ema, optimizer, step, losses, config)
                if callback is not None:
                    callback({"i": step - 1, "loss": value, "lr": lr, "model": model, "ema": ema.module})
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        # the loop stops only between steps, so the checkpoint is a consistent state
        if checkpoint_dir is not None and rank == 0:
            save_checkpoint(checkpoint_dir, model, ema, optimizer, step, losses, config)
        raise
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    if checkpoint_dir is not None and rank == 0 and step > start_step:
        save_checkpoint(checkpoint_dir, model, ema, optimizer, step, losses, config)
    seconds = time.perf_counter() - start
    done = step - start_step
    return TrainResult(losses, ema.module, step, seconds, done * config.batch_size / seconds if seconds else 0.0)


def _one_step(score_fn, model, ema, optimizer, config, sde, levels, n_levels, step, part, device, world):
    """One optimiser step on this process's share ``part`` of the global batch; returns (loss, lr)."""
    x0, t, eps = (v[part].to(device, non_blocking=True) for v in _draw(levels, n_levels, config, sde, step))
    lr = config.lr_at(step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = sde_score_matching_loss(score_fn, x0, sde, t_eps=config.t_eps, t=t, eps=eps)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    ema.update(model, step)
    value = loss.detach()
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(value)
        value = value / world
    value = float(value)
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {step}; try a smaller lr or stronger clipping")
    return value, lr


class _StopFlag:
    """While active, Ctrl-C (SIGINT) only sets ``requested``; the loop stops at the end of the step."""

    def __init__(self):
        self.requested, self._old = False, None

    def _handler(self, signum, frame):
        self.requested = True

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


# -- helpers for the chapters and the command line ------------------------------------------

def suggest_sigma_max(images) -> float:
    """The largest Euclidean distance between two training images in model space [-1, 1] (bin centres).

    Song & Ermon (2020), technique 1: the VE SDE's largest noise must be about as large as the
    largest pairwise distance of the data, or the prior cannot reach every mode.
    """
    from .datasets import ImageData, to_model_space

    if not isinstance(images, ImageData):
        raise TypeError(f"images: expected an ImageData, got {type(images).__name__}")
    x = to_model_space(images.images, images.n_levels, dtype=torch.float64).reshape(len(images), -1)
    best = 0.0
    for chunk in x.split(2048):
        best = max(best, float(torch.cdist(chunk, x).max()))
    return best


_DATASETS = ("digits", "mnist-5k", "mnist", "fashion-mnist", "cifar10")


def _load(name: str, root=None):
    from . import datasets

    if name == "digits":
        return datasets.load_digits()
    if name == "mnist-5k":
        return datasets.load_mnist_5k()
    loader = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist,
              "cifar10": datasets.load_cifar10}[name]
    return loader(root, "train")


def build_model(kind: str, sde: SDE, shape, *, seed: int = 0, **sizes) -> nn.Module:
    """``"unet"`` (``UNet.for_image``) or ``"mlp"`` (``FlatScoreNet``) for images of ``shape``."""
    from .unet import FlatScoreNet, UNet

    if kind == "unet":
        return UNet.for_image(sde, shape, seed=seed, **sizes)
    if kind == "mlp":
        return FlatScoreNet(sde, shape, seed=seed, **sizes)
    raise ValueError(f"kind: expected 'unet' or 'mlp', got {kind!r}")


def main(argv=None) -> TrainResult:
    """Command line: ``python -m scorelab.image_training --data digits --steps 2000 --out runs/digits``.

    Under ``torchrun --nproc_per_node=K`` the same command trains with K processes
    (DistributedDataParallel; ``--batch-size`` is the global batch).
    """
    import argparse

    from .datasets import split
    from .sdes import VESDE, VPSDE

    p = argparse.ArgumentParser(prog="python -m scorelab.image_training", description=main.__doc__.split("\n")[0])
    p.add_argument("--data", choices=_DATASETS, default="digits")
    p.add_argument("--root", default=None, help="folder of mnist, fashion-mnist, cifar10 (default $SCORELAB_DATA)")
    p.add_argument("--n-held-out", type=int, default=None, help="held-out images kept out of training")
    p.add_argument("--model", choices=("unet", "mlp"), default="unet")
    p.add_argument("--width", type=int, default=None, help="MLP width")
    p.add_argument("--depth", type=int, default=None, help="MLP residual blocks")
    p.add_argument("--channels", type=int, default=None, help="U-Net channels")
    p.add_argument("--sde", choices=("ve", "vp"), default="vp")
    p.add_argument("--sigma-max", type=float, default=None, help="VE sigma_max (default: largest pairwise distance)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="checkpoint folder")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)

    rank, world, device = init_distributed()
    data = _load(a.data, a.root)
    n_held_out = a.n_held_out if a.n_held_out is not None else max(1, len(data) // 5)
    train, _ = split(data, n_held_out, seed=0)
    if a.sde == "ve":
        sde = VESDE(sigma_min=0.01, sigma_max=a.sigma_max or suggest_sigma_max(train))
    else:
        sde = VPSDE(beta_min=0.1, beta_max=20.0)
    sizes = {k: v for k, v in (("width", a.width), ("depth", a.depth), ("channels", a.channels)) if v is not None}
    model = build_model(a.model, sde, train.shape, seed=a.seed, **sizes)
    flag = {"auto": "auto", "on": True, "off": False}
    config = TrainConfig(n_steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup_steps=a.warmup, ema_decay=a.ema,
                         seed=a.seed, checkpoint_every=a.checkpoint_every, amp=flag[a.amp], compile=flag[a.compile])
    result = train_score_model(model, train, sde, config, checkpoint_dir=a.out, resume=a.resume,
                               device=a.device or device, progress=not a.no_progress)
    if rank == 0:
        tail = result.losses[-min(100, len(result.losses)):] or [float("nan")]
        print(f"{a.data}: {result.step} steps, {world} process(es), {result.images_per_second:.0f} images/s, "
              f"final loss {sum(tail) / len(tail):.4f}" + (f", checkpoint in {a.out}" if a.out else ""))
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return result



if __name__ == "__main__":
    main()
