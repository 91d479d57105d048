"""Small helpers shared by the chapters: the fast switch and seeding."""

from __future__ import annotations

import os

import torch

__all__ = ["fast_mode", "fast_or_full", "make_generator"]


def fast_mode() -> bool:
    """True when the environment variable ``SCORELAB_FAST`` is set to 1/true/yes.

    Chapters read it to shrink step counts for a quick test loop; readers get the full
    settings by default, and the prose quotes those.
    """
    return os.environ.get("SCORELAB_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def fast_or_full(fast, full):
    """Return ``fast`` under ``SCORELAB_FAST=1`` and ``full`` otherwise."""
    return fast if fast_mode() else full


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``: pass it to every random draw."""
    return torch.Generator().manual_seed(int(seed))
