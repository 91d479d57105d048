"""Tests for scorelab.conditional (section 4.6.1) against independent references.

References used:
- brute-force Bayes with ``torch.distributions.MultivariateNormal`` on the components of the
  exact marginal ``sde.marginal(mixture, t)``, for ``log_class_posterior`` and ``log_prob``;
- autograd of ``log_class_posterior`` for ``classifier_grad_fn``;
- ``exact_score_fn`` of the unconditional mixture and of the class sub-mixture (independent
  code) for the Bayes identity ``cond = uncond + classifier gradient``;
- Monte-Carlo label frequencies for ``sample``; fresh exact class samples (sliced Wasserstein
  floor) for a reverse SDE driven by the conditional score, with a negative control.
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import gen, near_floor, sw_to_target  # noqa: E402  (tests/reference.py)

import scorelab as sl
from scorelab.conditional import LabelledMixture, classifier_grad_fn, conditional_score_fn, guided_score, two_class_toy
from scorelab.metrics import sliced_wasserstein_floor
from scorelab.sde_samplers import sample_reverse_diffusion
from scorelab.sdes import VESDE, VPSDE, exact_score_fn

torch.set_num_threads(1)


def three_class():
    means = torch.tensor([[-2.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, -1.5], [1.0, 2.0]])
    mix = sl.GaussianMixture(torch.tensor([0.1, 0.3, 0.2, 0.25, 0.15]), means,
                             torch.tensor([0.5, 1.0, 0.3, 0.7, 0.4]))
    return LabelledMixture(mix, [0, 1, 2, 1, 0])


def brute_posterior(lmix, x, sde, t):
    mix = lmix.mixture if sde is None else sde.marginal(lmix.mixture, t)
    comp = torch.stack([torch.distributions.MultivariateNormal(mix.means[k].double(), mix.covs[k].double()).log_prob(x)
                        for k in range(mix.n_components)], -1) + torch.log(mix.weights.double())
    joint = torch.stack([torch.logsumexp(comp[:, lmix.labels == c], -1) for c in range(lmix.n_classes)], -1)
    return joint - torch.logsumexp(comp, -1, keepdim=True), torch.logsumexp(comp, -1)


@pytest.mark.parametrize("sde_name", ["vp", "ve", "none"])
def test_log_class_posterior_is_bayes_on_the_marginal(sde_name):
    lmix = three_class()
    sde = {"vp": VPSDE(), "ve": VESDE(0.01, 10.0), "none": None}[sde_name]
    x = 3 * torch.randn(300, 2, generator=gen(0), dtype=torch.float64)
    for t in (0.0, 0.05, 0.3, 0.9):
        got = lmix.log_class_posterior(x, t, sde)
        want, logp = brute_posterior(lmix, x, sde, t)
        assert torch.allclose(got, want, atol=1e-10)
        assert torch.allclose(lmix.log_prob(x, t, sde), logp, atol=1e-10)
        assert torch.allclose(got.exp().sum(-1), torch.ones(300, dtype=torch.float64), atol=1e-12)


def test_class_prior_and_class_mixture():
    lmix = three_class()
    assert torch.allclose(lmix.class_prior, torch.tensor([0.25, 0.55, 0.2], dtype=torch.float64))
    sub = lmix.class_mixture(1)
    assert sub.n_components == 2
    assert torch.allclose(sub.weights.double(), torch.tensor([0.3, 0.25], dtype=torch.float64) / 0.55)
    # p(x | y) p(y) = p(y | x) p(x), pointwise
    x = 2 * torch.randn(200, 2, generator=gen(1), dtype=torch.float64)
    lhs = sub.log_prob(x) + math.log(0.55)
    rhs = lmix.log_class_posterior(x)[:, 1] + lmix.log_prob(x)
    assert torch.allclose(lhs, rhs, atol=1e-10)


def test_sample_label_frequencies_and_class_moments():
    lmix = three_class()
    n = 40_000
    x, y = lmix.sample(n, generator=gen(2))
    freq = torch.bincount(y, minlength=3).double() / n
    se = torch.sqrt(lmix.class_prior * (1 - lmix.class_prior) / n)
    assert bool(((freq - lmix.class_prior).abs() < 4 * se).all())
    xc = x[y == 2].double()  # class 2 is one component, N((2, 0), 0.3 I)
    assert torch.allclose(xc.mean(0), torch.tensor([2.0, 0.0], dtype=torch.float64), atol=4 * math.sqrt(0.3 / len(xc)))
    xs = lmix.sample_class(0, 20_000, generator=gen(3)).double()
    sub = lmix.class_mixture(0)
    assert torch.allclose(xs.mean(0), sub.mean.double(), atol=0.05)


@pytest.mark.parametrize("t", [0.0, 0.01, 0.2, 0.7])
def test_classifier_gradient_is_autograd_of_the_log_posterior(t):
    lmix, sde = three_class(), VPSDE()
    x = 2.5 * torch.randn(200, 2, generator=gen(4), dtype=torch.float64)
    for c in range(3):
        xg = x.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(lmix.log_class_posterior(xg, t, sde)[:, c].sum(), xg)
        assert torch.allclose(classifier_grad_fn(sde, lmix, c)(x, t), ref, atol=1e-9)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 10.0)], ids=["vp", "ve"])
def test_bayes_identity_conditional_equals_unconditional_plus_classifier(sde):
    lmix = three_class()
    x = 2.5 * torch.randn(300, 2, generator=gen(5), dtype=torch.float64)
    uncond = exact_score_fn(sde, lmix.mixture)
    for t in (0.0, 0.02, 0.3, 1.0):
        for c in range(3):
            cond = conditional_score_fn(sde, lmix, c)(x, t)
            total = uncond(x, t) + classifier_grad_fn(sde, lmix, c)(x, t)
            assert torch.allclose(cond, total, atol=1e-9)
            # and against autograd of the class-conditional log-density itself
            xg = x.clone().requires_grad_(True)
            (ref,) = torch.autograd.grad(sde.marginal(lmix.class_mixture(c), t).log_prob(xg).sum(), xg)
            assert torch.allclose(cond, ref, atol=1e-9)
    # negative control: the classifier gradient of another class breaks the identity
    wrong = uncond(x, 0.02) + classifier_grad_fn(sde, lmix, 1)(x, 0.02)
    assert (wrong - conditional_score_fn(sde, lmix, 0)(x, 0.02)).abs().max() > 0.1


def test_per_example_labels_and_times():
    lmix, sde = three_class(), VPSDE()
    x = 2 * torch.randn(90, 2, generator=gen(6), dtype=torch.float64)
    y = torch.arange(90) % 3
    t = torch.linspace(0.01, 0.9, 90, dtype=torch.float64)
    cond = conditional_score_fn(sde, lmix, y)(x, t)
    grad = classifier_grad_fn(sde, lmix, y)(x, t)
    for c in range(3):
        m = y == c
        for i in torch.nonzero(m)[:3, 0].tolist():
            one = conditional_score_fn(sde, lmix, c)(x[i:i + 1], t[i:i + 1])
            assert torch.allclose(cond[i:i + 1], one, atol=1e-10)
            assert torch.allclose(grad[i:i + 1], classifier_grad_fn(sde, lmix, c)(x[i:i + 1], float(t[i])), atol=1e-10)


def test_guided_score_scales_the_classifier_term():
    lmix, sde = two_class_toy(), VPSDE()
    x = 2 * torch.randn(100, 2, generator=gen(7), dtype=torch.float64)
    u, g = exact_score_fn(sde, lmix.mixture), classifier_grad_fn(sde, lmix, 0)
    assert torch.allclose(guided_score(u, g, 0.0)(x, 0.1), u(x, 0.1))
    assert torch.allclose(guided_score(u, g, 1.0)(x, 0.1), conditional_score_fn(sde, lmix, 0)(x, 0.1), atol=1e-10)
    assert torch.allclose(guided_score(u, g, 3.0)(x, 0.1), u(x, 0.1) + 3 * g(x, 0.1))
    # guided score at t = 0 is the gradient of the tilted log-density
    xg = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(lmix.tilted_log_prob(xg, 0, 3.0).sum(), xg)
    assert torch.allclose(guided_score(u, g, 3.0)(x, 0.0), ref, atol=1e-9)


def test_reverse_sde_with_the_conditional_score_samples_the_class():
    lmix, sde = two_class_toy(), VPSDE()
    n = 1500
    x_T = sde.prior_sampling((n, 2), generator=gen(8), dtype=torch.float64)
    floor = sliced_wasserstein_floor(lmix.class_mixture(1), n, n_repeats=8, generator=gen(9))
    x = sample_reverse_diffusion(conditional_score_fn(sde, lmix, 1), x_T, sde, n_steps=300, generator=gen(10))
    assert near_floor(sw_to_target(x, lmix.class_mixture(1), 11), floor)
    # negative control: the unconditional score does not sample the class
    x_u = sample_reverse_diffusion(exact_score_fn(sde, lmix.mixture), x_T, sde, n_steps=300, generator=gen(10))
    assert not near_floor(sw_to_target(x_u, lmix.class_mixture(1), 11), floor)


def test_bad_input_raises_clear_errors():
    mix = sl.eight_gaussians()
    with pytest.raises(ValueError, match="labels"):
        LabelledMixture(mix, [0, 1])
    with pytest.raises(ValueError, match="classes \\[1\\]"):
        LabelledMixture(mix, [0, 0, 2, 2, 0, 0, 2, 2])
    with pytest.raises(TypeError, match="labels"):
        LabelledMixture(mix, torch.zeros(8))
    with pytest.raises(TypeError, match="mixture"):
        LabelledMixture("mix", [0])
    full = sl.GaussianMixture(torch.ones(2), torch.zeros(2, 2), torch.tensor([[[1.0, 0.5], [0.5, 1.0]]] * 2))
    with pytest.raises(ValueError, match="isotropic"):
        LabelledMixture(full, [0, 1])
    lmix, sde = two_class_toy(), VPSDE()
    with pytest.raises(ValueError, match="y: expected a class index"):
        conditional_score_fn(sde, lmix, 2)
    with pytest.raises(ValueError, match="y: expected a class index"):
        classifier_grad_fn(sde, lmix, -1)
    with pytest.raises(TypeError, match="sde"):
        classifier_grad_fn("vp", lmix, 0)
    with pytest.raises(TypeError, match="lmix"):
        conditional_score_fn(sde, mix, 0)
    u, g = exact_score_fn(sde, lmix.mixture), classifier_grad_fn(sde, lmix, 0)
    with pytest.raises(ValueError, match="w"):
        guided_score(u, g, float("nan"))
    with pytest.raises(TypeError, match="classifier_grad_fn"):
        guided_score(u, None, 1.0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        g(torch.zeros(3, 3), 0.1)
    with pytest.raises(ValueError, match="y: expected an int or an \\(5,\\)"):
        classifier_grad_fn(sde, lmix, torch.zeros(4, dtype=torch.long))(torch.zeros(5, 2), 0.1)
    with pytest.raises(ValueError, match="t: expected times"):
        g(torch.zeros(3, 2), 2.0)
