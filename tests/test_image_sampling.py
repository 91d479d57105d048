"""Sampling images: every sampler returns images of the right shape and range from a score whose
answer is known (a mixture of two digit-like images), and the recorder and grids work on images."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from scorelab.distributions import GaussianMixture
from scorelab.image_sampling import SAMPLERS, ImageRecorder, animate_images, image_grid, sample_images, show_panels
from scorelab.plotting import to_html
from scorelab.sdes import VESDE, VPSDE, exact_score_fn

SHAPE = (1, 4, 4)


def _two_images():
    """Two 4x4 'images' in [-1, 1] (a bar and a ring) blurred by a little Gaussian noise: an exact score."""
    bar = -torch.ones(4, 4, dtype=torch.float64)
    bar[:, 1:3] = 0.8
    ring = torch.full((4, 4), 0.8, dtype=torch.float64)
    ring[1:3, 1:3] = -0.8
    means = torch.stack([bar.flatten(), ring.flatten()])
    return GaussianMixture(torch.tensor([0.5, 0.5]), means, torch.full((2,), 0.05**2, dtype=torch.float64)), means


_KWARGS = {
    "euler_maruyama": dict(n_steps=300),
    "reverse_diffusion": dict(n_steps=300),
    "pc": dict(n_steps=150, snr=0.1),
    "probability_flow": dict(n_steps=60),
    "probability_flow_adaptive": dict(rtol=1e-4, atol=1e-4),
    "heun_karras": dict(n_steps=20),
    "dpm_solver_2": dict(n_steps=15),
}


@pytest.mark.parametrize("sde", [VPSDE(0.1, 20.0), VESDE(0.01, 12.0)], ids=["vp", "ve"])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_returns_images_of_the_right_shape_and_range(name, sde):
    dist, means = _two_images()
    exact = exact_score_fn(sde, dist)
    stats = {}
    x = sample_images(lambda x, t: exact(x, t), sde, 64, SHAPE, sampler=name, seed=0, batch_size=32,
                      stats=stats, **_KWARGS[name])
    assert x.shape == (64, *SHAPE) and x.dtype == torch.float32 and stats["nfe"] > 0
    assert float(x.min()) > -1.3 and float(x.max()) < 1.3  # inside the data range, up to the 0.05 blur
    # each sample is one of the two images, and both appear
    d = torch.cdist(x.reshape(64, -1).double(), means)
    assert float(d.min(1).values.max()) < 0.5
    share = float((d.argmin(1) == 0).double().mean())
    assert 0.25 < share < 0.75
    again = sample_images(lambda x, t: exact(x, t), sde, 64, SHAPE, sampler=name, seed=0, batch_size=32,
                          **_KWARGS[name])
    assert torch.equal(x, again)  # seeded


def test_recorder_grid_and_animation():
    dist, _ = _two_images()
    sde = VPSDE(0.1, 20.0)
    exact = exact_score_fn(sde, dist)
    x0 = sde.prior_sampling((6, *SHAPE), generator=0)
    rec = ImageRecorder(every=10, n_keep=4, x0=x0, t0=sde.T)
    SAMPLERS["euler_maruyama"](exact, x0, sde, n_steps=50, generator=1, callback=rec)
    assert rec.frames.shape == (1 + 5 + 1, 4, *SHAPE)  # prior, every 10th step, the denoised images
    assert rec.times[0] == 1.0 and rec.times[-1] == 0.0
    grid = image_grid(rec.frames[-1], nrow=2)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1) and 0 <= grid.min() and grid.max() <= 1
    html = to_html(animate_images(rec.frames, times=rec.times)).data
    assert html.count("frames[") >= len(rec.times)  # one embedded image per recorded state
    fig = show_panels({"a": rec.frames[0], "b": rec.frames[-1]})
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="sampler: expected .dpm_solver_2."):
        sample_images(exact, sde, 2, SHAPE, sampler="ddim")
