"""Score networks: shapes, seeding, every noise conditioning, and conservativeness (sections 4.2–4.3)."""

import math

import pytest
import torch

from scorelab.losses import explicit_score_matching_loss
from scorelab.nets import CONDITIONINGS, EnergyScoreNet, MLPScore, NoiseConditionalScoreNet

torch.set_num_threads(1)
SIGMAS = torch.tensor([5.0, 2.0, 0.8, 0.3, 0.1])


def points(n, d, seed=0, dtype=torch.float32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def jacobian_at(fn, x):
    """(d, d) Jacobian of a row-wise field at one point, from torch.autograd.functional."""
    return torch.autograd.functional.jacobian(lambda z: fn(z[None])[0], x)


# -- shapes and seeding ---------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 7])
def test_mlp_score_shapes(d):
    net = MLPScore(d, hidden=16, depth=2, seed=0)
    assert net(points(5, d)).shape == (5, d)
    if d == 1:
        assert net(torch.randn(5)).shape == (5, 1)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in net.modules())
    assert n_linear == 3  # two hidden layers and a read-out
    assert any(isinstance(m, torch.nn.SiLU) for m in net.modules())


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("d", [1, 3])
def test_noise_conditional_shapes_for_every_sigma_form(conditioning, d):
    net = NoiseConditionalScoreNet(d, SIGMAS, conditioning=conditioning, hidden=16, depth=2, seed=0)
    x = points(5, d)
    per_example = SIGMAS[torch.tensor([0, 1, 2, 3, 4])]
    outs = [net(x, 0.8), net(x, torch.tensor(0.8)), net(x, torch.full((5,), 0.8)), net(x, torch.full((5, 1), 0.8))]
    for out in outs:
        assert out.shape == (5, d)
        torch.testing.assert_close(out, outs[0])
    assert net(x, per_example).shape == (5, d)
    # a per-example sigma gives row i the same output as calling with that sigma alone
    mixed = net(x, per_example)
    for i in range(5):
        torch.testing.assert_close(mixed[i], net(x[i:i + 1], float(per_example[i]))[0])


@pytest.mark.parametrize("make", [
    lambda seed: MLPScore(3, hidden=16, seed=seed),
    lambda seed: NoiseConditionalScoreNet(3, SIGMAS, "fourier", hidden=16, seed=seed),
    lambda seed: NoiseConditionalScoreNet(3, SIGMAS, "embedding", hidden=16, seed=seed),
    lambda seed: EnergyScoreNet(3, hidden=16, seed=seed),
])
def test_seed_makes_construction_deterministic_and_leaves_global_rng_alone(make):
    state = torch.get_rng_state()
    a, b, c = make(1), make(1), make(2)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_seed_none_uses_global_rng():
    torch.manual_seed(0)
    a = MLPScore(2, hidden=8)
    torch.manual_seed(0)
    b = MLPScore(2, hidden=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# -- each conditioning works ---------------------------------------------------

@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_every_conditioning_changes_the_output_with_sigma(conditioning):
    net = NoiseConditionalScoreNet(2, SIGMAS, conditioning=conditioning, hidden=32, seed=3)
    x = points(20, 2)
    outs = [net(x, float(s)) for s in SIGMAS]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            rel = (outs[i] - outs[j]).norm() / outs[i].norm()
            assert rel > 1e-3, (conditioning, float(SIGMAS[i]), float(SIGMAS[j]))


def test_divide_conditioning_is_an_unconditional_net_over_sigma():
    net = NoiseConditionalScoreNet(2, SIGMAS, conditioning="divide", hidden=16, seed=0)
    x = points(10, 2)
    ref = net(x, 1.0)
    for s in (0.1, 0.37, 4.0):
        torch.testing.assert_close(net(x, s) * s, ref)


def test_log_sigma_input_is_standardised_over_the_schedule():
    net = NoiseConditionalScoreNet(2, SIGMAS, conditioning="log_sigma", hidden=8, seed=0)
    feats = net._features(torch.tensor([float(SIGMAS.max()), float(SIGMAS.min()), math.sqrt(5.0 * 0.1)]))
    torch.testing.assert_close(feats[:, 0], torch.tensor([1.0, -1.0, 0.0]), atol=1e-6, rtol=0)


def test_fourier_features_are_sines_and_cosines_of_scaled_log_sigma():
    net = NoiseConditionalScoreNet(2, SIGMAS, conditioning="fourier", hidden=8, seed=0, n_fourier=4,
                                   fourier_scale=2.0)
    sig = torch.tensor([0.3, 2.0])
    c = (torch.log(sig) - net._log_center) / net._log_scale
    angle = 2 * math.pi * c[:, None] * net.fourier_w[None]
    torch.testing.assert_close(net._features(sig), torch.cat([angle.sin(), angle.cos()], -1))
    assert net._features(sig).shape == (2, 8)


def test_embedding_uses_one_learned_row_per_level():
    net = NoiseConditionalScoreNet(2, SIGMAS, conditioning="embedding", hidden=16, seed=0)
    x = points(6, 2)
    before = {float(s): net(x, float(s)).detach() for s in SIGMAS}
    with torch.no_grad():
        net.embedding.weight[2] += 1.0  # the row of sigma = 0.8
    for s in SIGMAS:
        after = net(x, float(s))
        if float(s) == pytest.approx(0.8):
            assert not torch.allclose(after, before[float(s)])
        else:
            torch.testing.assert_close(after, before[float(s)])


def test_embedding_maps_sigma_to_its_index_and_rejects_unknown_levels():
    sig64 = torch.logspace(0, -2, 7, dtype=torch.float64)  # a geometric schedule made in float64
    net = NoiseConditionalScoreNet(2, sig64, conditioning="embedding", hidden=8, seed=0)
    idx = net.sigma_index(sig64.float()[[6, 0, 3]])  # float32 round-off is still recognised
    assert idx.tolist() == [6, 0, 3]
    with pytest.raises(ValueError, match="schedule"):
        net(points(3, 2), 0.5)
    with pytest.raises(ValueError, match="schedule"):
        net(points(2, 2), torch.tensor([1.0, 0.55]))
    with pytest.raises(ValueError, match="distinct"):
        NoiseConditionalScoreNet(2, [1.0, 1.0, 0.5], conditioning="embedding")


# -- conservative or not -------------------------------------------------------

def test_energy_score_is_minus_energy_gradient_by_finite_differences():
    net = EnergyScoreNet(3, hidden=16, seed=0).double().eval()
    x = points(4, 3, dtype=torch.float64)
    s = net(x)
    h = 1e-6
    for j in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[j] = h
        fd = (net.energy(x + e) - net.energy(x - e)) / (2 * h)
        torch.testing.assert_close(s[:, j], -fd, rtol=1e-6, atol=1e-8)


def test_energy_net_jacobian_is_symmetric_but_mlp_jacobian_is_not():
    x = points(5, 3, seed=1, dtype=torch.float64)
    energy = EnergyScoreNet(3, hidden=32, seed=0).double().eval()
    free = MLPScore(3, hidden=32, seed=0).double()
    for i in range(5):
        j_e = jacobian_at(energy, x[i].clone().requires_grad_(True))
        torch.testing.assert_close(j_e, j_e.T, rtol=1e-10, atol=1e-12)
        j_f = jacobian_at(free, x[i])
        asym = (j_f - j_f.T).norm() / j_f.norm()
        assert asym > 0.05


def test_energy_net_graph_modes():
    net = EnergyScoreNet(2, hidden=16, seed=0)
    x = points(8, 2)
    net.eval()
    assert not net(x).requires_grad  # sampling: no graph kept
    net.train()
    out = net(x)
    assert out.requires_grad  # training: differentiable in the parameters
    out.pow(2).sum().backward()
    # every weight shapes the score; the read-out bias only shifts the energy, so it gets no gradient
    assert all(p.grad is not None for name, p in net.named_parameters() if name.endswith("weight"))
    assert net.net[-1].bias.grad is None
    net.eval()
    loss = explicit_score_matching_loss(net, x)  # x requires grad inside the loss: second derivatives work
    loss.backward()
    assert torch.isfinite(loss)


def test_noise_conditional_energy_net():
    net = EnergyScoreNet(2, hidden=16, noise_conditional=True, sigmas=SIGMAS, seed=0).eval()
    x = points(6, 2)
    assert net(x, 0.5).shape == (6, 2)
    assert net(x, SIGMAS[:1].expand(6)).shape == (6, 2)
    assert not torch.allclose(net(x, 0.1), net(x, 5.0))
    assert net.energy(x, 0.5).shape == (6,)
    with pytest.raises(TypeError, match="sigma"):
        net(x)
    with pytest.raises(TypeError, match="sigma"):
        EnergyScoreNet(2, hidden=8)(x, 0.5)


# -- bad input ---------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="dim"):
        MLPScore(0)
    with pytest.raises(ValueError, match="depth"):
        MLPScore(2, depth=0)
    with pytest.raises(TypeError, match="seed"):
        MLPScore(2, seed=1.5)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        MLPScore(2)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="conditioning"):
        NoiseConditionalScoreNet(2, SIGMAS, conditioning="film")
    with pytest.raises(ValueError, match="sigmas"):
        NoiseConditionalScoreNet(2, [1.0, -0.1])
    net = NoiseConditionalScoreNet(2, SIGMAS, hidden=8)
    with pytest.raises(ValueError, match="sigma"):
        net(points(4, 2), torch.ones(3))
    with pytest.raises(ValueError, match="sigma"):
        net(points(4, 2), 0.0)
    with pytest.raises(TypeError, match="sigma"):
        net(points(4, 2), "big")


# -- optional BatchNorm in MLPScore (principles, "network architecture") -------

def test_mlp_score_batch_norm_is_off_by_default_and_keeps_the_same_linear_weights():
    plain, bn = MLPScore(3, hidden=16, depth=2, seed=0), MLPScore(3, hidden=16, depth=2, seed=0, batch_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in bn.modules()) == 2  # one per hidden layer
    lin_plain = [m for m in plain.modules() if isinstance(m, torch.nn.Linear)]
    lin_bn = [m for m in bn.modules() if isinstance(m, torch.nn.Linear)]
    assert len(lin_plain) == len(lin_bn) == 3
    for a, b in zip(lin_plain, lin_bn, strict=True):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with pytest.raises(TypeError, match="batch_norm"):
        MLPScore(3, batch_norm="yes")


def test_mlp_score_batch_norm_train_mode_depends_on_the_batch_eval_mode_does_not():
    net = MLPScore(2, hidden=16, depth=2, seed=0, batch_norm=True)
    x = points(1, 2, seed=1)
    batch_a = torch.cat([x, points(15, 2, seed=2)])
    batch_b = torch.cat([x, 5 + 3 * points(15, 2, seed=3)])
    net.train()
    with torch.no_grad():
        before = net.net[1].running_mean.clone()
        a, b = net(batch_a)[0], net(batch_b)[0]
    assert (a - b).abs().max() > 1e-3  # the same point, two batches, two scores
    assert not torch.equal(net.net[1].running_mean, before)  # a train-mode forward updates the running stats
    # train mode normalises with the batch's own statistics: the first layer's BN output has mean 0, variance 1
    with torch.no_grad():
        h = net.net[1](net.net[0](batch_b))
    torch.testing.assert_close(h.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    net.eval()
    with torch.no_grad():
        a, b, alone = net(batch_a)[0], net(batch_b)[0], net(x)[0]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, alone)


def test_mlp_score_batch_norm_trains_with_dsm():
    from scorelab.distributions import Gaussian
    from scorelab.losses import denoising_score_matching_loss
    from scorelab.metrics import relative_score_error
    from scorelab.training import train

    data, sigma = Gaussian(torch.zeros(2), 1.0), 0.5
    net = MLPScore(2, hidden=32, depth=2, seed=0, batch_norm=True)
    train(net, lambda m, b, g: denoising_score_matching_loss(m, b, sigma, generator=g), data, n_steps=300,
          batch_size=256, lr=3e-3, generator=torch.Generator().manual_seed(0), progress=False)
    assert not net.training  # train() leaves it in eval mode
    noised = data.perturbed(sigma)
    x = noised.sample(2000, generator=torch.Generator().manual_seed(1))
    assert relative_score_error(net, noised.score, x) < 0.05  # exact score -x / (1 + sigma^2)
