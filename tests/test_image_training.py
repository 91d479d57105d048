"""Image score networks and their training: shapes and parametrisation, the loss going down, resuming an
interrupted run bit for bit, and two torchrun processes making the update of one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scorelab.datasets import load_digits, split
from scorelab.image_training import (
    EMA,
    TrainConfig,
    build_model,
    load_checkpoint,
    load_weights,
    minibatch_indices,
    suggest_sigma_max,
    train_score_model,
)
from scorelab.losses import sde_score_matching_loss
from scorelab.sdes import VESDE, VPSDE
from scorelab.unet import FlatScoreNet, UNet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits_train():
    train, _ = split(load_digits(), 360, seed=0)
    return train


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 16)])
def test_unet_maps_images_to_scores_of_the_same_shape(shape):
    sde = VPSDE(0.1, 20.0)
    net = UNet.for_image(sde, shape, seed=0)
    x = torch.randn(3, *shape)
    t = torch.tensor([0.1, 0.5, 0.9])
    s = net(x, t)
    assert s.shape == x.shape and s.dtype == torch.float32
    # the output is the noise prediction scaled by -1 / sigma(t)
    torch.testing.assert_close(s, -net.eps(x, t) / sde.sigma(t)[:, None, None, None])


def test_networks_are_seeded_and_treat_examples_independently():
    sde = VESDE(0.01, 10.0)
    for make in (lambda s: UNet.for_image(sde, (1, 8, 8), seed=s), lambda s: FlatScoreNet(sde, (1, 8, 8), seed=s)):
        a, b, c = make(0), make(0), make(1)
        # zero-initialised read-outs make a fresh net output 0; perturb them to compare outputs
        for net in (a, b, c):
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.01 * torch.sin(torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape)))
        x, t = torch.randn(4, 1, 8, 8), torch.rand(4) * 0.9 + 0.05
        assert torch.equal(a(x, t), b(x, t)) and not torch.equal(a(x, t), c(x, t))
        torch.testing.assert_close(a(x[:1], t[:1]), a(x, t)[:1], rtol=1e-5, atol=1e-5)


def test_wrong_image_shape_is_a_clear_error():
    net = UNet.for_image(VESDE(), (1, 8, 8), seed=0)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(N, 1, 8, 8\), got \(2, 1, 28, 28\)"):
        net(torch.zeros(2, 1, 28, 28), 0.5)
    with pytest.raises(ValueError, match="channel_mult"):
        UNet(VESDE(), (1, 8, 8), channel_mult=())


def test_pre_drawn_times_and_noise_give_the_loss_of_the_drawn_ones():
    sde = VPSDE(0.1, 20.0)
    net = FlatScoreNet(sde, (1, 4, 4), width=16, depth=1, seed=0)
    x0 = torch.rand(8, 1, 4, 4) * 2 - 1
    g = torch.Generator().manual_seed(3)
    t = 1e-5 + (1 - 1e-5) * torch.rand(8, generator=g)
    _, eps = sde.perturb(x0, t, generator=g)
    drawn = sde_score_matching_loss(net, x0, sde, generator=torch.Generator().manual_seed(3))
    given = sde_score_matching_loss(net, x0, sde, t=t, eps=eps)
    torch.testing.assert_close(drawn, given)
    with pytest.raises(ValueError, match="both"):
        sde_score_matching_loss(net, x0, sde, t=t)


def test_minibatches_walk_through_permutations():
    seen = torch.cat([minibatch_indices(50, 10, 7, i) for i in range(5)])
    assert sorted(seen.tolist()) == list(range(50))  # one epoch covers every image once
    assert torch.equal(minibatch_indices(50, 10, 7, 3), minibatch_indices(50, 10, 7, 3))
    assert not torch.equal(minibatch_indices(50, 10, 7, 5), minibatch_indices(50, 10, 7, 0))


def test_sigma_max_is_the_largest_pairwise_distance(digits_train):
    sub = digits_train.subset(torch.arange(40))
    x = (sub.images.double() + 0.5) / 17 * 2 - 1
    brute = max(float((x[i] - x[j]).norm()) for i in range(40) for j in range(40))
    assert suggest_sigma_max(sub) == pytest.approx(brute, rel=1e-12)


def test_a_few_training_steps_lower_the_loss(digits_train):
    sde = VESDE(0.01, 10.0)
    model = build_model("mlp", sde, (1, 8, 8), width=64, depth=2, seed=0)
    x0 = (digits_train.images[:256].float() + 0.5) / 17 * 2 - 1

    def held_loss(m):
        with torch.no_grad():
            return float(sde_score_matching_loss(m, x0, sde, generator=torch.Generator().manual_seed(0)))

    before = held_loss(model)
    result = train_score_model(model, digits_train, sde, TrainConfig(n_steps=100, batch_size=64, lr=3e-3,
                                                                     warmup_steps=5), progress=False)
    assert len(result.losses) == 100 and result.step == 100
    after = held_loss(model)
    assert after < 0.85 * before
    assert held_loss(result.ema) < before  # the EMA (with warm-up) follows the weights


def test_ema_warm_up_and_average():
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin, decay=0.9)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10_000) == 0.9
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema.update(lin, 0)  # decay 0.1: 0.1 * 0 + 0.9 * 1
    assert float(ema.module.weight) == pytest.approx(0.9)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_after_an_interruption_reproduces_the_uninterrupted_run(digits_train, tmp_path):
    sde = VESDE(0.01, 10.0)
    config = TrainConfig(n_steps=24, batch_size=32, lr=2e-3, warmup_steps=4, seed=5, checkpoint_every=10)

    def fresh():
        return build_model("unet", sde, (1, 8, 8), channels=8, channel_mult=(1, 2), seed=3)

    straight = fresh()
    ref = train_score_model(straight, digits_train, sde, config, progress=False)

    def stop_at_17(info):
        if info["i"] == 16:
            raise KeyboardInterrupt

    model = fresh()
    with pytest.raises(KeyboardInterrupt):
        train_score_model(model, digits_train, sde, config, checkpoint_dir=tmp_path, callback=stop_at_17,
                          progress=False)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "ema.safetensors", "state.pt"}
    state = load_checkpoint(tmp_path, fresh())
    assert state["step"] == 17 and len(state["losses"]) == 17

    resumed_model = fresh()  # a new process would start from fresh weights and read the checkpoint
    resumed = train_score_model(resumed_model, digits_train, sde, config, checkpoint_dir=tmp_path, resume=True,
                                progress=False)
    assert resumed.step == 24 and resumed.losses == ref.losses
    for k, v in _state(straight).items():
        assert torch.equal(resumed_model.state_dict()[k], v), k
    for k, v in _state(ref.ema).items():
        assert torch.equal(resumed.ema.state_dict()[k], v), k
    # the weights on disk are the EMA of the finished run
    again = load_weights(fresh(), tmp_path)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in _state(ref.ema).items())


def test_bad_configuration_is_reported():
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(n_steps=1, lr_schedule="linear")
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(n_steps=1, ema_decay=1.0)
    with pytest.raises(TypeError, match="images: expected an ImageData"):
        train_score_model(torch.nn.Linear(1, 1), torch.zeros(3, 1, 8, 8), VESDE(), TrainConfig(n_steps=1))


_ARGS = ["--data", "digits", "--model", "mlp", "--width", "32", "--depth", "1", "--steps", "3", "--batch-size", "16",
         "--warmup", "1", "--seed", "2", "--no-progress", "--device", "cpu"]


def test_two_torchrun_processes_make_the_update_of_one(tmp_path):
    from scorelab.image_training import main

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "scorelab.image_training", *_ARGS, "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "2 process(es)" in done.stdout
    one = main([*_ARGS, "--out", str(tmp_path / "one")])
    sde = VESDE(0.01, 10.0)
    a = load_weights(build_model("mlp", sde, (1, 8, 8), width=32, depth=1), tmp_path / "ddp" / "model.safetensors")
    b = load_weights(build_model("mlp", sde, (1, 8, 8), width=32, depth=1), tmp_path / "one" / "model.safetensors")
    changed = False
    init = build_model("mlp", sde, (1, 8, 8), width=32, depth=1, seed=2).state_dict()
    for k, v in a.state_dict().items():
        # the same update up to float round-off (Adam divides by sqrt(v), which magnifies it for tiny gradients)
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-4, atol=1e-5)
        changed |= not torch.equal(v, init[k])
    assert changed  # the runs did move the weights
    ddp_state = torch.load(tmp_path / "ddp" / "state.pt", weights_only=True)
    assert ddp_state["losses"] == pytest.approx(one.losses, rel=1e-4)


def test_the_gpu_path_runs_on_a_cpu_with_bf16_autocast(digits_train, tmp_path):
    """bf16 autocast (what a GPU run uses) on the CPU: the time embedding and the score stay float32,
    the loss is finite, and checkpoints hold float32 weights."""
    sde = VPSDE(0.1, 20.0)
    net = UNet.for_image(sde, (1, 8, 8), channels=8, seed=0)
    t = torch.rand(4) * 0.9 + 0.05
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        emb = net._embed(t)
        s = net(torch.randn(4, 1, 8, 8), t)
        h = net.time_mlp(emb)
    assert emb.dtype == torch.float32 and s.dtype == torch.float32 and h.dtype == torch.bfloat16
    config = TrainConfig(n_steps=6, batch_size=16, warmup_steps=2, amp=True, compile=False)
    small = FlatScoreNet(sde, (1, 8, 8), width=32, depth=1, seed=0)  # bf16 convolutions are slow on a CPU
    result = train_score_model(small, digits_train, sde, config, device="cpu", checkpoint_dir=tmp_path,
                               progress=False)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in weights.values())
