"""Tests for scorelab.plotting: every figure holds the artists and numbers it claims to draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

from scorelab import plotting as P  # noqa: E402
from scorelab.distributions import EnergyModel, Gaussian, GaussianMixture, standard_gaussian, two_mode_1d  # noqa: E402

# Some tests inspect an animation without rendering it; matplotlib warns when such one is collected.
pytestmark = pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def mixture():
    return GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.5, 1.0]))


def _quiver(ax) -> Quiver:
    (q,) = [c for c in ax.collections if isinstance(c, Quiver)]
    return q


# -- style and grid -----------------------------------------------------------------

def test_use_style_sets_book_defaults():
    with matplotlib.rc_context():
        P.use_style()
        rc = matplotlib.rcParams
        assert tuple(rc["figure.figsize"]) == (8.0, 4.5)
        assert not rc["axes.spines.top"] and not rc["axes.spines.right"]
        assert rc["image.cmap"] == P.DENSITY_CMAP
        assert rc["animation.embed_limit"] >= P.EMBED_LIMIT_MB


def test_grid_layout_matches_meshgrid_and_points():
    X, Y, pts = P.grid(((-1, 3), (0, 2)), 5)
    assert X.shape == Y.shape == (5, 5) and pts.shape == (25, 2)
    assert torch.allclose(X[0], torch.linspace(-1, 3, 5)) and torch.allclose(Y[:, 0], torch.linspace(0, 2, 5))
    # row-major: f(points).reshape(n, n) lines up with X and Y
    assert torch.equal(pts[:, 0].reshape(5, 5), X) and torch.equal(pts[:, 1].reshape(5, 5), Y)


@pytest.mark.parametrize("lims", [(1, 1), (2, -2), ((0, 1), (3, 3)), (0, float("nan"))])
def test_grid_rejects_bad_lims(lims):
    with pytest.raises(ValueError, match="lims"):
        P.grid(lims, 4)


def test_grid_rejects_bad_n():
    with pytest.raises(ValueError, match="n"):
        P.grid((-1, 1), 1)


# -- densities ------------------------------------------------------------------------

def test_heatmap_shows_the_exact_density(mixture):
    ax = P.plot_density(mixture, lims=(-6, 6), n=41)
    (im,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    _, _, pts = P.grid((-6, 6), 41)
    expected = mixture.log_prob(pts).exp().reshape(41, 41).numpy()
    np.testing.assert_allclose(np.asarray(im.get_array()), expected, rtol=1e-5, atol=1e-12)
    assert im.origin == "lower" and tuple(im.get_extent()) == (-6, 6, -6, 6)


def test_energy_model_density_is_scaled_to_peak_one(mixture):
    # exp(-E) with E = -log p + 7: the picture must not depend on the constant
    energy = EnergyModel(lambda x: -mixture.log_prob(x) + 7.0, dim=2)
    ax = P.plot_density(energy, n=31)
    (im,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    arr = np.asarray(im.get_array())
    _, _, pts = P.grid((-6, 6), 31)
    p = mixture.log_prob(pts).exp().reshape(31, 31).numpy()
    np.testing.assert_allclose(arr, p / p.max(), rtol=1e-4, atol=1e-10)
    assert arr.max() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["contour", "contourf"])
def test_contour_kinds_draw_a_contour_set(mixture, kind):
    ax = P.plot_density(mixture.log_prob, kind=kind, n=30, levels=6)
    sets = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(sets) == 1 and len(sets[0].levels) >= 4
    assert ax.get_xlim() == (-6, 6)


def test_plot_density_rejects_bad_input(mixture):
    with pytest.raises(ValueError, match="kind"):
        P.plot_density(mixture, kind="surface")
    with pytest.raises(TypeError, match="target"):
        P.plot_density(3.0)
    with pytest.raises(ValueError, match="dim=1"):
        P.plot_density(standard_gaussian(1))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        P.plot_density(lambda x: x, n=5)  # returns (N, 2), not (N,)


def test_density_1d_draws_density_and_exact_score():
    mix = two_mode_1d()
    ax, sax = P.plot_density_1d(mix, lims=(-5, 5), n=201)
    xs = torch.linspace(-5, 5, 201, dtype=torch.float64).unsqueeze(-1)
    (dens_line,) = ax.get_lines()
    np.testing.assert_allclose(dens_line.get_ydata(), mix.log_prob(xs).exp().numpy(), rtol=1e-10)
    score_line = sax.get_lines()[0]
    np.testing.assert_allclose(score_line.get_ydata(), mix.score(xs)[:, 0].numpy(), rtol=1e-10, atol=1e-12)
    assert sax is not ax and sax.get_shared_x_axes().joined(ax, sax)


def test_density_1d_callable_is_normalised_and_score_by_autograd():
    # an unnormalised Gaussian log-density with mean 1 and std 0.8: after numerical
    # normalisation the curve is the Gaussian pdf and the score is -(x - 1) / 0.64
    ax, sax = P.plot_density_1d(lambda x: -0.5 * ((x[:, 0] - 1.0) / 0.8) ** 2 + 3.0, lims=(-6, 6), n=801)
    x = ax.get_lines()[0].get_xdata()
    pdf = np.exp(-0.5 * ((x - 1) / 0.8) ** 2) / (0.8 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), pdf, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(sax.get_lines()[0].get_ydata(), -(x - 1) / 0.64, rtol=1e-10, atol=1e-12)


def test_density_1d_without_score_has_no_twin_axis():
    ax, sax = P.plot_density_1d(standard_gaussian(1), show_score=False)
    assert sax is None and len(ax.figure.axes) == 1
    with pytest.raises(ValueError, match="dim=2"):
        P.plot_density_1d(Gaussian(torch.zeros(2)))


# -- score fields -----------------------------------------------------------------------

@pytest.mark.parametrize("n", [7, 12])
def test_quiver_has_one_arrow_per_grid_point_with_the_exact_score(mixture, n):
    ax = P.plot_score_field(mixture, n=n, lims=(-4, 4))
    q = _quiver(ax)
    assert q.N == n * n
    _, _, pts = P.grid((-4, 4), n)
    s = mixture.score(pts).numpy()
    np.testing.assert_allclose(np.asarray(q.U).ravel(), s[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(q.V).ravel(), s[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q.X, pts[:, 0].numpy(), atol=1e-6)


def test_normalised_arrows_have_unit_length_and_keep_direction(mixture):
    n = 9
    ax = P.plot_score_field(mixture, n=n, normalize=True)
    q = _quiver(ax)
    U, V = np.asarray(q.U).ravel(), np.asarray(q.V).ravel()
    np.testing.assert_allclose(np.hypot(U, V), 1.0, rtol=1e-6)
    _, _, pts = P.grid((-6, 6), n)
    s = mixture.score(pts).double().numpy()
    mag = np.hypot(s[:, 0], s[:, 1])
    # same direction as the score, and coloured by |s|
    np.testing.assert_allclose(U * mag, s[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(q.get_array()).ravel(), mag, rtol=1e-5)
    # an arrow spans 0.8 grid spacings in data units
    assert q.scale == pytest.approx(1.0 / (0.8 * 12 / (n - 1)))


def test_streamplot_draws_lines_along_the_field():
    # the field of N(0, I) points straight at the origin, so every streamline segment
    # is (anti)parallel to its own position vector
    ax = P.plot_score_field(standard_gaussian(2), kind="stream", n=30, lims=(-3, 3))
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1
    segs = [s for s in lines[0].get_segments() if np.linalg.norm(s[-1] - s[0]) > 1e-3]
    assert len(segs) > 20
    def sin_angle(a, b):
        return abs(a[0] * b[1] - a[1] * b[0]) / (np.linalg.norm(a) * np.linalg.norm(b))

    cross = [sin_angle(s[-1] - s[0], s[0]) for s in segs if np.linalg.norm(s[0]) > 0.3]
    assert np.median(cross) < 0.05


def test_score_field_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        P.plot_score_field(standard_gaussian(2), kind="arrows")
    with pytest.raises(TypeError, match="score_fn"):
        P.plot_score_field("not a function")
    with pytest.raises(ValueError, match="shape"):
        P.plot_score_field(lambda x: x[:, :1])
    with pytest.raises(ValueError, match="non-finite"):
        P.plot_score_field(lambda x: x / 0.0)


# -- particles ------------------------------------------------------------------------

def test_plot_particles_draws_the_points():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    ax = P.plot_particles(x, s=3)
    (pc,) = ax.collections
    np.testing.assert_allclose(pc.get_offsets(), x.numpy(), rtol=1e-6)
    assert matplotlib.colors.to_hex(pc.get_facecolor()[0]) == P.PARTICLE_COLOR
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        P.plot_particles(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        P.plot_particles([[0.0, 1.0]])


def test_plot_paths_draws_one_line_per_kept_particle():
    traj = torch.cumsum(torch.randn(6, 30, 2, generator=torch.Generator().manual_seed(1)), 0)
    ax = P.plot_paths(traj, max_paths=10)
    lines = ax.get_lines()
    assert len(lines) == 10
    np.testing.assert_allclose(lines[0].get_xydata(), traj[:, 0].numpy(), rtol=1e-6)


# -- recorder -------------------------------------------------------------------------

def _fake_sampler(x, n_steps, callback):
    """x_{i+1} = x_i + 1, reporting each step like a scorelab sampler."""
    for i in range(n_steps):
        x = x + 1.0
        callback({"i": i, "x": x, "sigma": torch.tensor(0.5 * i), "step_size": 0.1, "note": "skip me",
                  "vec": torch.ones(3)})
    return x


def test_recorder_keeps_every_kth_state_and_scalars():
    x0 = torch.zeros(4, 2)
    rec = P.TrajectoryRecorder(every=3)
    _fake_sampler(x0, 10, rec)
    # states after steps 3, 6, 9 (callback indices 2, 5, 8)
    assert rec.steps == [2, 5, 8] and len(rec) == 3
    traj = rec.trajectory
    assert traj.shape == (3, 4, 2)
    np.testing.assert_allclose(traj[:, 0, 0].numpy(), [3, 6, 9])
    assert rec.info[1] == {"i": 5, "sigma": 2.5, "step_size": 0.1}


def test_recorder_with_x0_holds_states_zero_to_n_steps():
    rec = P.TrajectoryRecorder(every=5, x0=torch.zeros(2, 2))
    _fake_sampler(torch.zeros(2, 2), 20, rec)
    np.testing.assert_allclose(rec.trajectory[:, 0, 0].numpy(), [0, 5, 10, 15, 20])


def test_recorder_stores_clones_and_optional_initial_state():
    x = torch.zeros(3, 2)
    rec = P.TrajectoryRecorder(x0=x)
    for i in range(2):
        x.add_(1.0)  # an in-place sampler must not change what was recorded
        rec({"i": i, "x": x})
    np.testing.assert_allclose(rec.trajectory[:, 0, 0].numpy(), [0, 1, 2])
    assert rec.steps == [-1, 0, 1]
    rec.reset()
    with pytest.raises(ValueError, match="nothing recorded"):
        _ = rec.trajectory


def test_recorder_rejects_bad_input():
    with pytest.raises(ValueError, match="every"):
        P.TrajectoryRecorder(every=0)
    rec = P.TrajectoryRecorder()
    with pytest.raises(TypeError, match="'i'"):
        rec({"x": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        rec({"i": 0, "x": torch.zeros(2)})
    rec({"i": 0, "x": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="shape"):
        rec({"i": 1, "x": torch.zeros(3, 2)})


# -- animations ---------------------------------------------------------------------------

def _traj(T=4, N=20, seed=0):
    return torch.randn(T, N, 2, generator=torch.Generator().manual_seed(seed))


def test_matplotlib_animation_has_T_frames_and_moves_the_particles(mixture):
    traj = _traj(T=5)
    anim = P.animate_particles(traj, background=mixture, titles=[f"step {t}" for t in range(5)], n_background=20)
    assert len(list(anim.new_frame_seq())) == 5
    fig = anim._fig
    ax = fig.axes[0]
    assert any(isinstance(a, AxesImage) for a in ax.get_children())  # the background heatmap
    sc = ax.collections[-1]
    anim._func(3)
    np.testing.assert_allclose(sc.get_offsets(), traj[3].numpy(), rtol=1e-6)
    assert fig._suptitle.get_text() == "step 3"


def test_side_by_side_panels_and_jshtml_closes_the_figure():
    anim = P.animate_particles({"gradient ascent": _traj(3), "Langevin": _traj(3, seed=1)}, dpi=30, panel_size=2)
    fig = anim._fig
    assert [a.get_title() for a in fig.axes] == ["gradient ascent", "Langevin"]
    html = P.to_html(anim)
    assert "<script" in html.data and html.data.count("data:image/jpeg;base64") == 3
    assert not plt.fignum_exists(fig.number)
    png = P.to_html(P.animate_particles(_traj(2), dpi=20, panel_size=2), frame_format="png", default_mode="once")
    assert png.data.count("data:image/png;base64") == 2
    with pytest.raises(ValueError, match="frame_format"):
        P.to_html(P.animate_particles(_traj(2)), frame_format="gif")


def test_animations_reject_bad_trajectories():
    with pytest.raises(ValueError, match=r"\(T, N, 2\)"):
        P.animate_particles(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(T, N, 2\)"):
        P.animate_particles_plotly(torch.zeros(4, 5, 3))
    with pytest.raises(ValueError, match="same number of frames"):
        P.animate_particles({"a": _traj(3), "b": _traj(4)})
    with pytest.raises(ValueError, match="titles"):
        P.animate_particles(_traj(3), titles=["only one"])
    with pytest.raises(TypeError, match="Animation"):
        P.to_html("not an animation")


def test_plotly_animation_has_T_frames_slider_and_subsampled_points(mixture):
    T, N = 6, 50
    traj = _traj(T, N)
    fig = P.animate_particles_plotly(traj, background=mixture, max_points=20, titles=lambda t: f"t={t}",
                                     n_background=25)
    assert len(fig.frames) == T
    assert len(fig.layout.sliders) == 1 and len(fig.layout.sliders[0].steps) == T
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["Play", "Pause"]
    assert fig.data[0].type == "heatmap" and np.asarray(fig.data[0].z).shape == (25, 25)
    scatter = fig.data[1]
    assert len(scatter.x) == 20
    # the same 20 particles in every frame, at their recorded positions
    idx = [int(np.argmin(np.abs(traj[0, :, 0].numpy() - v))) for v in scatter.x]
    assert len(set(idx)) == 20
    np.testing.assert_allclose(fig.frames[4].data[0].x, traj[4, idx, 0].numpy(), rtol=1e-6)
    assert fig.frames[4].layout.title.text == "t=4"


def test_plotly_side_by_side_frames_update_both_panels():
    rec = P.TrajectoryRecorder()
    _fake_sampler(torch.zeros(8, 2), 3, rec)
    fig = P.animate_particles_plotly({"a": rec, "b": _traj(3, 8)})
    assert len(fig.frames) == 3 and list(fig.frames[0].traces) == [0, 1]
    np.testing.assert_allclose(fig.frames[2].data[0].x, np.full(8, 3.0))
