"""Sample quality without downloaded weights: a classifier trained here, and four measures (image chapters).

FID and the Inception score judge generated images through a network trained on ImageNet;
offline we cannot fetch one, so we train a small convolutional classifier on the real training
split (``train_classifier``, a few seconds on a CPU) and judge samples through it:

(a) **confident share**: the fraction of images the classifier labels with probability >= 0.9.
    A sharp digit is recognised confidently, a blurred or ambiguous one is not.  Its *ceiling*
    is the same share on real held-out images.
(b) **class histogram** of the predicted labels: a model that drops a class (mode collapse) or
    over-produces one shows it here; real data have about 10% per class.
(c) **Frechet distance** between Gaussians fitted to the classifier's penultimate features
    (the recipe of FID, Heusel et al. 2017, in a feature space trained here).  It is biased
    upwards at small N, so it is reported next to its *floor*: the distance of as many real
    held-out images to the same training features.
(d) **nearest-neighbour distance** of each sample to the training set, against the same for
    held-out images: much smaller distances than real unseen images have mean the model
    copies its training data (memorisation, see the principles chapter).

``QualityReference(classifier, train, held_out)`` computes the ceilings and floors once;
``reference.evaluate(samples)`` returns all four for a batch of samples.

Shapes: images are (N, C, H, W) in model space [-1, 1] (``scorelab.datasets.to_model_space``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_count, check_positive
from .sdes import append_dims

__all__ = [
    "ImageClassifier",
    "train_classifier",
    "predict",
    "confident_share",
    "class_histogram",
    "frechet_distance",
    "nearest_neighbour_distances",
    "QualityReference",
]


class ImageClassifier(nn.Module):
    """A small convolutional classifier: 3x3 convolutions (stride 2 until the map is at most 4x4), global
    average pooling, a ``features``-wide SiLU layer (the feature space of the Frechet distance), then logits.

    Args:
        shape: (C, H, W) of one image.
        n_classes: number of classes.
        channels: width of the first convolution (doubled once at the first stride-2 convolution).
        features: width of the penultimate layer.
        dropout: dropout before the last layer.
        seed: int for reproducible initial weights.
    """

    def __init__(self, shape, n_classes: int = 10, *, channels: int = 32, features: int = 64,
                 dropout: float = 0.2, seed: int | None = None):
        super().__init__()
        c, h, w = tuple(shape)
        self.shape, self.n_classes = (c, h, w), check_count(n_classes, "n_classes", 2)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            layers: list[nn.Module] = [nn.Conv2d(c, channels, 3, padding=1), nn.SiLU()]
            ch, size = channels, max(h, w)
            while size > 4:
                layers += [nn.Conv2d(ch, 2 * channels, 3, stride=2, padding=1), nn.SiLU()]
                ch, size = 2 * channels, (size + 1) // 2
            layers += [nn.Conv2d(ch, 2 * channels, 3, padding=1), nn.SiLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Linear(2 * channels, features), nn.SiLU())
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, (N, C, H, W) -> (N, features)."""
        return self.head(self.body(x).mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (N, C, H, W) -> (N, n_classes)."""
        return self.out(self.drop(self.features(x)))


def _as_images(x, shape=None, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a floating (N, C, H, W) tensor of images in [-1, 1], got {got}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name}: expected images of shape {tuple(shape)}, got {tuple(x.shape[1:])}")
    return x


def train_classifier(train, *, n_steps: int = 1500, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                     shift: int = 1, mixup: float = 0.25, device=None, progress: bool = False, **model_kwargs):
    """Train an ``ImageClassifier`` on the real training split; returns ``(classifier, losses)`` (eval mode).

    Each step sees a minibatch of uniformly dequantised images (so it sees the same kind of
    continuous images a score model produces) shifted by up to ``shift`` pixels.  A share
    ``mixup`` of each batch are blends ``l x_a + (1 - l) x_b`` of two images with the blended
    label (mixup, Zhang et al. 2018, ``l ~ U(0, 1)``): the classifier learns to be unsure of an
    image between two digits, which is what a poor generator draws, instead of naming one
    of them with confidence.  Adam with a cosine-decayed learning rate; everything seeded by ``seed``.

    Args:
        train: ``scorelab.datasets.ImageData`` (levels and labels).
        n_steps, batch_size, lr: the optimisation.
        shift: largest random translation in pixels (0: none).
        device: where to train (default CPU).
        **model_kwargs: ``ImageClassifier`` sizes.
    """
    from .datasets import ImageData

    if not isinstance(train, ImageData):
        raise TypeError(f"train: expected an ImageData, got {type(train).__name__}")
    n_steps = check_count(n_steps, "n_steps", 1)
    batch_size = check_count(batch_size, "batch_size", 1)
    lr = check_positive(lr, "lr")
    device = torch.device(device or "cpu")
    n_classes = int(train.labels.max()) + 1
    model = ImageClassifier(train.shape, max(n_classes, len(train.classes)), seed=seed, **model_kwargs).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / n_steps)))
    g = torch.Generator().manual_seed(seed)
    n = len(train)
    bar = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="classifier", leave=False)
    model.train()
    # dropout draws from the global generator: seed it inside a fork so the run is reproducible
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        losses = _fit(model, opt, sched, train, bar, n, batch_size, shift, mixup, g, device)
    model.eval()
    return model, losses


def _fit(model, opt, sched, train, bar, n, batch_size, shift, mixup, g, device):
    from .datasets import to_model_space

    losses = []
    for _ in bar:
        idx = torch.randint(n, (batch_size,), generator=g)
        x = to_model_space(train.images[idx], train.n_levels, generator=g)
        if shift:
            dx, dy = torch.randint(-shift, shift + 1, (2,), generator=g).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        target = F.one_hot(train.labels[idx], model.n_classes).float()
        m = int(round(mixup * batch_size))
        if m:
            lam = torch.rand(m, generator=g)
            other = torch.randint(n, (m,), generator=g)
            x_b = to_model_space(train.images[other], train.n_levels, generator=g)
            x[:m] = append_dims(lam, 4) * x[:m] + append_dims(1 - lam, 4) * x_b
            target[:m] = lam[:, None] * target[:m] + (1 - lam[:, None]) * F.one_hot(train.labels[other],
                                                                                       model.n_classes).float()
        loss = F.cross_entropy(model(x.to(device)), target.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def predict(classifier: nn.Module, x: torch.Tensor, *, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, K) and penultimate features (N, F) of images x (N, C, H, W), in batches."""
    x = _as_images(x, getattr(classifier, "shape", None))
    device = next(classifier.parameters()).device
    probs, feats = [], []
    for chunk in x.split(batch_size):
        f = classifier.features(chunk.to(device, torch.float32).clamp(-1, 1))
        probs.append(torch.softmax(classifier.out(f), dim=-1).cpu())
        feats.append(f.cpu())
    return torch.cat(probs), torch.cat(feats)


def confident_share(probs: torch.Tensor, threshold: float = 0.9) -> float:
    """Fraction of rows of ``probs`` (N, K) whose largest probability is at least ``threshold``."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a probability in (0, 1], got {threshold!r}")
    return float((probs.max(dim=-1).values >= threshold).double().mean())


def class_histogram(probs: torch.Tensor) -> torch.Tensor:
    """Share of each predicted class (argmax of ``probs`` (N, K)): a (K,) float64 tensor summing to 1."""
    return torch.bincount(probs.argmax(-1), minlength=probs.shape[-1]).double() / max(len(probs), 1)


def _mean_cov(f: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    a = f.double().numpy()
    return a.mean(0), np.cov(a, rowvar=False)


def frechet_distance(a, b) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, F) and b (M, F).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``; each argument is a
    feature tensor or a precomputed ``(mean, cov)`` pair.  The matrix square roots go through
    symmetric eigendecompositions in float64 (no complex round-off as with a general sqrtm).
    """
    mu_a, s_a = a if isinstance(a, tuple) else _mean_cov(a)
    mu_b, s_b = b if isinstance(b, tuple) else _mean_cov(b)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ s_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def nearest_neighbour_distances(x: torch.Tensor, reference: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Euclidean distance (in [0, 1] pixel units) from each image of x to its nearest image in ``reference``: (N,)."""
    x = _as_images(x)
    ref = _as_images(reference, x.shape[1:], "reference")
    r = ((ref.float() + 1) / 2).clamp(0, 1).reshape(len(ref), -1)
    out = []
    for chunk in x.split(batch_size):
        q = ((chunk.float() + 1) / 2).clamp(0, 1).reshape(len(chunk), -1)
        out.append(torch.cdist(q, r).min(dim=1).values)
    return torch.cat(out)


@dataclass
class _Ref:
    probs: torch.Tensor
    feats: torch.Tensor


class QualityReference:
    """The four quality measures, with their real-data ceiling and floor computed once.

    Args:
        classifier: a trained ``ImageClassifier`` (``train_classifier``).
        train: the training split (``ImageData``): reference features and nearest-neighbour set.
        held_out: the held-out split: the ceiling of (a), the floor of (c) and the yardstick of (d).
        threshold: confidence threshold of (a).

    Attributes:
        accuracy: the classifier's held-out accuracy.
        ceiling: confident share of held-out images.
        floor: Frechet distance of the held-out images' features to the training features (N = held-out size).
        nn_held_out: median nearest-neighbour distance of held-out images to the training set.
    """

    def __init__(self, classifier: nn.Module, train, held_out, *, threshold: float = 0.9):
        from .datasets import to_model_space

        self.classifier, self.threshold = classifier, threshold
        self.train_x = to_model_space(train.images, train.n_levels)
        self.held_x = to_model_space(held_out.images, held_out.n_levels)
        _, train_feats = predict(classifier, self.train_x)
        self.train_stats = _mean_cov(train_feats)
        held_probs, held_feats = predict(classifier, self.held_x)
        self.n = len(held_out)
        self.accuracy = float((held_probs.argmax(-1) == held_out.labels).double().mean())
        self.ceiling = confident_share(held_probs, threshold)
        self.floor = frechet_distance(self.train_stats, held_feats)
        self.held_histogram = class_histogram(held_probs)
        self.nn_held_out = float(nearest_neighbour_distances(self.held_x, self.train_x).median())

    def frechet(self, feats: torch.Tensor) -> float:
        """Mean Frechet distance to the training features over disjoint chunks of ``self.n`` samples
        (the held-out size, so the value compares with ``floor`` at the same N)."""
        k = len(feats) // self.n
        if k == 0:
            raise ValueError(f"samples: expected at least {self.n} images (the held-out size) for the Frechet "
                             f"distance, got {len(feats)}")
        return sum(frechet_distance(self.train_stats, c) for c in feats[: k * self.n].split(self.n)) / k

    def evaluate(self, samples: torch.Tensor) -> dict:
        """All four measures for ``samples`` (N, C, H, W) in model space.

        Returns a dict: ``confident_share``, ``share_of_ceiling`` (a); ``histogram`` (K,),
        ``min_class``, ``max_class`` (b); ``frechet``, ``frechet_over_floor`` (c); ``nn_median``,
        ``nn_over_held_out`` (d, below 1 means closer to the training images than unseen real ones are).
        """
        samples = _as_images(samples, self.train_x.shape[1:], "samples")
        probs, feats = predict(self.classifier, samples)
        share = confident_share(probs, self.threshold)
        hist = class_histogram(probs)
        fd = self.frechet(feats)
        nn_med = float(nearest_neighbour_distances(samples, self.train_x).median())
        return {
            "confident_share": share,
            "share_of_ceiling": share / self.ceiling,
            "histogram": hist,
            "min_class": float(hist.min()),
            "max_class": float(hist.max()),
            "frechet": fd,
            "frechet_over_floor": fd / self.floor,
            "nn_median": nn_med,
            "nn_over_held_out": nn_med / self.nn_held_out,
        }
