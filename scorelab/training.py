"""A small, seeded training loop for score models (sections 4.2–4.3).

``train`` runs Adam on any ``loss_fn(model, batch, generator)`` from ``scorelab.losses``
(wrapped in a lambda that fixes sigma, projections, ...), drawing batches either from a
``Distribution`` (a fresh exact sample every step: the population loss) or from a fixed
``(N, d)`` data set (shuffled minibatches, epoch after epoch: the empirical loss, where
memorisation can happen).  One generator drives the batches and the loss's own noise, so the
same seed and the same initial model give the same loss history, bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_batch, check_callable, check_count, check_generator, check_positive, check_type

__all__ = ["train"]


def _batches(data, batch_size: int, g: torch.Generator):
    """Yield batches forever: fresh samples from a distribution or shuffled minibatches of a tensor."""
    if isinstance(data, torch.Tensor):
        n = data.shape[0]
        size = min(batch_size, n)
        while True:
            perm = torch.randperm(n, generator=g)
            for start in range(0, n - size + 1, size):
                yield data[perm[start:start + size]]
    else:
        while True:
            yield data.sample(batch_size, generator=g)


def train(model: nn.Module, loss_fn, data, *, n_steps: int, batch_size: int = 256, lr: float = 1e-3,
          generator=None, progress: bool = True, callback=None, lr_schedule=None) -> list[float]:
    """Fit ``model`` by Adam on ``loss_fn``; return the loss of every step (sections 4.2–4.3).

    Args:
        model: a ``torch.nn.Module`` (e.g. ``scorelab.nets.MLPScore``).
        loss_fn: ``loss_fn(model, batch, generator) -> scalar tensor``, for instance
            ``lambda m, x, g: denoising_score_matching_loss(m, x, 0.5, generator=g)``.
        data: a ``Distribution`` (``batch_size`` fresh samples per step) or an (N, d) tensor
            (shuffled minibatches of ``min(batch_size, N)`` rows; a short last batch is dropped).
        n_steps: number of Adam steps.
        batch_size: examples per step.
        lr: Adam learning rate.
        generator: ``torch.Generator`` or int seed; drives batches and the loss's noise.  With
            None a fresh, randomly seeded generator is used (not reproducible).
        progress: show a tqdm progress bar with the running loss.
        callback: optional ``callback({"i": step, "loss": float, "lr": float, "model": model})`` after
            each step.
        lr_schedule: None or ``"constant"`` (fixed ``lr``), ``"cosine"`` (cosine decay from ``lr`` at
            step 0 to 0 after the last step), or a callable ``f(step) -> factor`` multiplying ``lr``.
            A decaying rate removes most of the jitter Adam keeps around the optimum with noisy
            losses (DSM at small sigma, NCSN).

    Returns:
        A list of ``n_steps`` floats.  The model is left in eval mode.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite (lower ``lr`` or check sigma).
    """
    check_type(model, nn.Module, "model", "a torch.nn.Module")
    check_callable(loss_fn, "loss_fn", "loss_fn(model, batch, generator)")
    if isinstance(data, torch.Tensor):
        check_batch(data, "data")
    elif not callable(getattr(data, "sample", None)):
        raise TypeError(f"data: expected a Distribution (with .sample(n, generator=)) or an (N, d) tensor, "
                        f"got {type(data).__name__}")
    n_steps = check_count(n_steps, "n_steps")
    batch_size = check_count(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: it has no trainable parameters")
    if lr_schedule in (None, "constant"):
        factor = None
    elif lr_schedule == "cosine":
        factor = lambda i: 0.5 * (1.0 + math.cos(math.pi * i / max(n_steps, 1)))  # noqa: E731
    elif callable(lr_schedule):
        factor = lr_schedule
    else:
        raise ValueError(f"lr_schedule: expected None, 'constant', 'cosine' or a callable step -> factor, "
                         f"got {lr_schedule!r}")
    g = check_generator(generator)
    if g is None:
        g = torch.Generator()
        g.seed()

    optimizer = torch.optim.Adam(params, lr=lr)
    batches = _batches(data, batch_size, g)
    history: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc="train", leave=False)
    every = max(1, n_steps // 100)
    model.train()
    try:
        for i in range(n_steps):
            batch = next(batches)
            loss = loss_fn(model, batch, g)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn: expected a scalar tensor, got {got}")
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {i}; try a smaller lr or a larger sigma")
            step_lr = lr if factor is None else lr * float(factor(i))
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append(value)
            if callback is not None:
                callback({"i": i, "loss": value, "lr": step_lr, "model": model})
            if bar is not None:
                bar.update(1)
                if i % every == 0 or i == n_steps - 1:
                    bar.set_postfix(loss=f"{value:.4g}")
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    return history
