"""Quality measures: the Frechet distance against its closed form, and the four measures at their
ceiling / floor on real unseen digits, clearly worse on noise, and flagging copies of training images."""

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from scorelab.datasets import load_digits, split, to_model_space
from scorelab.image_metrics import (
    QualityReference,
    class_histogram,
    confident_share,
    frechet_distance,
    nearest_neighbour_distances,
    train_classifier,
)


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5)))
    b = torch.from_numpy(rng.normal(size=(300, 5)) * 2.0 + 1.0)
    ma, mb = a.numpy().mean(0), b.numpy().mean(0)
    sa, sb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    ref = ((ma - mb) ** 2).sum() + np.trace(sa + sb - 2 * sqrtm(sa @ sb).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance((ma, sa), b) == pytest.approx(ref, rel=1e-8)


def test_share_histogram_and_nearest_neighbours():
    probs = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.15, 0.85], [0.02, 0.98]])
    assert confident_share(probs) == 0.5
    assert class_histogram(probs).tolist() == [0.5, 0.5]
    ref = torch.zeros(3, 1, 2, 2) - 1  # black images
    x = torch.ones(2, 1, 2, 2)  # white images: distance sqrt(4) in [0, 1] pixel units
    x[1] = -1
    assert nearest_neighbour_distances(x, ref).tolist() == [2.0, 0.0]


@pytest.fixture(scope="module")
def reference():
    data = load_digits()
    train, held = split(data, 360, seed=0)
    # two halves of the held-out digits: one is the reference, the other plays a perfect generator
    half_a, half_b = split(held, 180, seed=1)
    clf, _ = train_classifier(train, n_steps=600, batch_size=128, lr=3e-3, channels=16, seed=0)
    return QualityReference(clf, train, half_a), train, half_b


def test_measures_on_real_unseen_digits_sit_at_their_ceiling_and_floor(reference):
    ref, _, unseen = reference
    assert ref.accuracy > 0.9 and ref.ceiling > 0.6
    r = ref.evaluate(to_model_space(unseen.images, 17))
    # 180 images on each side: the shares have a standard error of about 0.035
    assert 0.75 < r["share_of_ceiling"] < 1.33
    assert r["frechet_over_floor"] < 2.0
    assert 0.05 <= r["min_class"] and r["max_class"] <= 0.15
    assert 0.8 < r["nn_over_held_out"] < 1.25


def test_measures_on_noise_are_clearly_worse(reference):
    ref, train, _ = reference
    g = torch.Generator().manual_seed(0)
    # blobs: the mean digit plus Gaussian noise, what a generator that learnt only the first two moments draws
    mean = to_model_space(train.images, 17).mean(0)
    blobs = mean + 0.5 * torch.randn(360, 1, 8, 8, generator=g)
    r = ref.evaluate(blobs)
    assert r["share_of_ceiling"] < 0.2
    assert r["frechet_over_floor"] > 20
    assert r["max_class"] > 0.2  # not spread over the ten digits like real data
    assert r["nn_over_held_out"] > 1.5
    # uniform noise far from any digit: a classifier may still name a digit with confidence (it was
    # never shown such images), but the features, the histogram and the distances give it away
    r = ref.evaluate(torch.rand(360, 1, 8, 8, generator=g) * 2 - 1)
    assert r["frechet_over_floor"] > 20 and r["max_class"] > 0.3 and r["nn_over_held_out"] > 2
    # blurred digits (a 3x3 mean filter) lose confidence and move away in feature space
    unseen = to_model_space(reference[2].images, 17)
    blurred = torch.nn.functional.avg_pool2d(unseen, 3, stride=1, padding=1, count_include_pad=False)
    rb = ref.evaluate(blurred)
    assert rb["frechet_over_floor"] > 3 and rb["share_of_ceiling"] < 0.8


def test_copies_of_training_images_are_flagged_as_memorised(reference):
    ref, train, _ = reference
    copies = to_model_space(train.images[:360], 17)
    r = ref.evaluate(copies)
    assert r["nn_median"] < 0.01 and r["nn_over_held_out"] < 0.01  # 0 up to the round-off of cdist
    with pytest.raises(ValueError, match="at least 180"):
        ref.evaluate(copies[:100])


def test_classifier_training_is_reproducible():
    train, _ = split(load_digits(), 360, seed=0)
    a, la = train_classifier(train, n_steps=5, batch_size=32, channels=8, seed=4)
    b, lb = train_classifier(train, n_steps=5, batch_size=32, channels=8, seed=4)
    assert la == lb  # dropout and mixup draw from seeded generators
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
