"""The training loop: determinism, data handling, and DSM reaching the noised score (sections 4.2–4.3)."""

import math

import pytest
import torch

import scorelab as sl
from scorelab.losses import denoising_score_matching_loss, ncsn_loss, sliced_score_matching_loss
from scorelab.metrics import relative_score_error
from scorelab.nets import MLPScore, NoiseConditionalScoreNet
from scorelab.training import train

torch.set_num_threads(1)

TARGET = sl.Gaussian(torch.tensor([1.0, -0.5]), torch.tensor([[1.0, 0.6], [0.6, 0.8]]))


def dsm(sigma):
    return lambda model, batch, g: denoising_score_matching_loss(model, batch, sigma, generator=g)


def test_same_seed_gives_identical_history_and_weights():
    runs = []
    for _ in range(2):
        net = MLPScore(2, hidden=32, depth=2, seed=0)
        hist = train(net, dsm(0.5), TARGET, n_steps=40, batch_size=64, generator=7, progress=False)
        runs.append((hist, [p.detach().clone() for p in net.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other = train(MLPScore(2, hidden=32, depth=2, seed=0), dsm(0.5), TARGET, n_steps=40, batch_size=64,
                  generator=8, progress=False)
    assert other != runs[0][0]
    # a torch.Generator works as well as an int seed
    gen_hist = train(MLPScore(2, hidden=32, depth=2, seed=0), dsm(0.5), TARGET, n_steps=40, batch_size=64,
                     generator=torch.Generator().manual_seed(7), progress=False)
    assert gen_hist == runs[0][0]


def test_training_reduces_the_loss():
    net = MLPScore(2, hidden=32, depth=2, seed=1)
    hist = train(net, lambda m, b, g: sliced_score_matching_loss(m, b, variance_reduced=True, generator=g),
                 sl.eight_gaussians(), n_steps=300, batch_size=128, lr=3e-3, generator=0, progress=False)
    assert len(hist) == 300
    first, last = sum(hist[:30]) / 30, sum(hist[-30:]) / 30
    # SSM is Fisher divergence minus a constant; it starts near 0 for a small random field and must go negative
    assert last < first - 1.0, (first, last)


def test_dsm_training_learns_the_noised_score_not_the_clean_one():
    sigma = 0.7
    noised = TARGET.perturbed(sigma)
    net = MLPScore(2, hidden=64, depth=2, seed=0)
    train(net, dsm(sigma), TARGET, n_steps=300, batch_size=256, lr=3e-3, generator=0, progress=False)
    x = noised.sample(4000, generator=1)
    with torch.no_grad():
        err_noised = relative_score_error(net, noised.score, x)
        err_clean = relative_score_error(net, TARGET.score, x)
    assert err_noised < 0.03, err_noised
    assert err_clean > 0.2, err_clean


def test_dsm_training_of_a_linear_model_reaches_the_closed_form():
    """s(x) = W x + b trained by DSM: W -> -(Sigma + sigma^2 I)^{-1}, b -> (Sigma + sigma^2 I)^{-1} mu."""
    sigma = 0.7
    lin = torch.nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
    train(lin, dsm(sigma), TARGET, n_steps=1000, batch_size=512, lr=1e-2, generator=0, progress=False)
    precision = torch.linalg.inv(TARGET.perturbed(sigma).covariance_matrix)
    # Adam with a constant lr keeps jittering around the optimum by about lr; 5e-2 allows for that
    torch.testing.assert_close(lin.weight.detach(), -precision, atol=5e-2, rtol=0)
    torch.testing.assert_close(lin.bias.detach(), precision @ TARGET.mean, atol=5e-2, rtol=0)


def test_tensor_data_gives_shuffled_epochs():
    data = torch.arange(10, dtype=torch.float32).reshape(10, 1)
    seen = []
    lin = torch.nn.Linear(1, 1)

    def record(model, batch, g):
        seen.append(batch[:, 0].tolist())
        return (model(batch) ** 2).mean()

    train(lin, record, data, n_steps=6, batch_size=4, generator=0, progress=False)
    assert all(len(b) == 4 for b in seen)
    # 10 rows in batches of 4: two batches per epoch (the short last one is dropped), no repeats within an epoch
    for epoch in range(3):
        rows = seen[2 * epoch] + seen[2 * epoch + 1]
        assert len(set(rows)) == 8 and set(rows) <= set(range(10))
    assert seen[0] != seen[2]  # a new permutation each epoch
    seen.clear()
    train(lin, record, data, n_steps=2, batch_size=64, generator=0, progress=False)
    assert sorted(seen[0]) == list(range(10))  # batch larger than the data set: the whole set, shuffled


def test_distribution_data_draws_fresh_batches():
    seen = []

    def record(model, batch, g):
        seen.append(batch.clone())
        return (model(batch) ** 2).mean()

    train(torch.nn.Linear(2, 2), record, TARGET, n_steps=3, batch_size=5, generator=0, progress=False)
    assert all(b.shape == (5, 2) for b in seen)
    assert not torch.equal(seen[0], seen[1])
    torch.testing.assert_close(seen[0], TARGET.sample(5, generator=0))


def test_callback_progress_bar_and_eval_mode(capsys):
    net = NoiseConditionalScoreNet(2, [1.0, 0.5, 0.1], hidden=16, seed=0)
    log = []
    hist = train(net, lambda m, b, g: ncsn_loss(m, b, [1.0, 0.5, 0.1], generator=g), sl.eight_gaussians(),
                 n_steps=5, batch_size=16, generator=0, progress=True, callback=log.append)
    assert [c["i"] for c in log] == list(range(5))
    assert [c["loss"] for c in log] == hist
    assert log[0]["model"] is net
    assert not net.training


def test_lr_schedules():
    cases = [
        (None, lambda i: 1e-2),
        ("cosine", lambda i: 1e-2 * 0.5 * (1 + math.cos(math.pi * i / 10))),
        (lambda i: 0.5**i, lambda i: 1e-2 * 0.5**i),
    ]
    for schedule, expected in cases:
        log = []
        train(torch.nn.Linear(2, 2), dsm(0.5), TARGET, n_steps=10, batch_size=8, lr=1e-2, generator=0,
              progress=False, callback=log.append, lr_schedule=schedule)
        assert [c["lr"] for c in log] == pytest.approx([expected(i) for i in range(10)])
    # the schedule really reaches the optimizer: a zero rate leaves the weights alone
    lin = torch.nn.Linear(2, 2)
    before = [p.detach().clone() for p in lin.parameters()]
    train(lin, dsm(0.5), TARGET, n_steps=5, batch_size=8, generator=0, progress=False, lr_schedule=lambda i: 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, lin.parameters(), strict=True))
    with pytest.raises(ValueError, match="lr_schedule"):
        train(lin, dsm(0.5), TARGET, n_steps=5, progress=False, lr_schedule="linear")


def test_non_finite_loss_and_bad_arguments():
    net = torch.nn.Linear(2, 2)
    with pytest.raises(FloatingPointError, match="step 0"):
        train(net, lambda m, b, g: m(b).sum() * float("nan"), TARGET, n_steps=3, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        train(net, lambda m, b, g: m(b), TARGET, n_steps=3, progress=False)
    with pytest.raises(TypeError, match="data"):
        train(net, dsm(0.5), [[1.0, 2.0]], n_steps=3, progress=False)
    with pytest.raises(ValueError, match="data"):
        train(net, dsm(0.5), torch.zeros(0, 2), n_steps=3, progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        train(net, dsm(0.5), TARGET, n_steps=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(net, dsm(0.5), TARGET, n_steps=3, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(net, dsm(0.5), TARGET, n_steps=3, lr=0, progress=False)
    with pytest.raises(TypeError, match="model"):
        train(lambda x: x, dsm(0.5), TARGET, n_steps=3, progress=False)
    with pytest.raises(TypeError, match="generator"):
        train(net, dsm(0.5), TARGET, n_steps=3, generator=1.5, progress=False)
