"""Checks of exercise 4.3 (a basic NCSN, piece by piece): parts A1, A2, A3, A4, B1.

References: the noise schedule against ``scorelab.samplers.geometric_sigmas``; the loss
against a direct float64 evaluation of the NCSN objective on a fixed batch, level indices and
noise, value and gradient with respect to the score model's parameters; the step sizes and the
whole annealed sampler against ``scorelab.samplers.sample_annealed_langevin`` itself (its
callback reports every step size, and, with a zero score, the Gaussian noise it draws, which is
then handed to the student's sampler); the mode weight against the true mixture weight, with a
tolerance from the binomial standard error of the number of particles.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, call, register, relative_error
from .._exercise_kit import close as _close
from ..distributions import GaussianMixture, noised_score
from ..metrics import mode_weights
from ..samplers import geometric_sigmas, sample_annealed_langevin

# -- the three-mode mixture of part B1 (also used by A4) -----------------------------------

B1_WEIGHTS = (0.6, 0.3, 0.1)
B1_MEANS = ((5.0, 5.0), (5.0, -5.0), (-5.0, 0.0))
B1_BOX = 10.0  # particles start uniform on [-10, 10]^2
B1_MIN_PARTICLES = 500
B1_SAMPLER_SLACK = 0.01  # a finite annealing schedule equilibrates the weights only up to about 0.01


def three_modes(dtype=F64) -> GaussianMixture:
    """The mixture of part B1: weights 0.6 / 0.3 / 0.1 at (5, 5), (5, -5), (-5, 0), unit covariances."""
    return GaussianMixture(torch.tensor(B1_WEIGHTS, dtype=dtype), torch.tensor(B1_MEANS, dtype=dtype),
                           torch.ones(3, dtype=dtype))


# -- A1: the geometric schedule ------------------------------------------------------------

@register("4.3.A1", "the geometric noise schedule", answers=('my_geometric_sigmas',), hidden=False)
def _geometric(fn):
    for sigma_max, sigma_min, L in ((20.0, 1.0, 10), (50.0, 0.01, 25), (1.0, 0.5, 2)):
        ref = geometric_sigmas(sigma_max, sigma_min, L, dtype=F64)
        out = call(fn, sigma_max, sigma_min, L, name="my_geometric_sigmas")
        if isinstance(out, torch.Tensor) and out.ndim == 1 and out.shape[0] in (L - 1, L + 1):
            extra = "one level too many" if out.shape[0] == L + 1 else "one level too few"
            raise Mismatch(f"my_geometric_sigmas({sigma_max:g}, {sigma_min:g}, {L}) returned {out.shape[0]} "
                           f"levels, {extra}: there are exactly L levels, sigma_1 = sigma_max ... sigma_L = "
                           "sigma_min, with exponent (i - 1)/(L - 1) for i = 1, ..., L.")
        out = as_output(out, ref, f"my_geometric_sigmas({sigma_max:g}, {sigma_min:g}, {L})")
        if _close(out, ref, 1e-5):
            continue
        if _close(out, ref.flip(0), 1e-5):
            raise Mismatch("the order is reversed: NCSN lists the levels from the largest noise to the "
                           "smallest (sigma_1 > sigma_2 > ... > sigma_L), the order in which annealed "
                           "Langevin visits them.")
        if _close(out, torch.linspace(sigma_max, sigma_min, L, dtype=F64), 1e-5):
            raise Mismatch("these are evenly spaced (linear) levels: a geometric schedule has a constant "
                           "ratio sigma_(i+1)/sigma_i, i.e. evenly spaced log sigma (torch.logspace or "
                           "exp of a linspace of logs).")
        if not (math.isclose(float(out[0]), sigma_max, rel_tol=1e-5)
                and math.isclose(float(out[-1]), sigma_min, rel_tol=1e-5)):
            raise Mismatch(f"the end points are off: for ({sigma_max:g}, {sigma_min:g}, L = {L}) you return "
                           f"sigma_1 = {float(out[0]):.4g} and sigma_L = {float(out[-1]):.4g}; they must be "
                           "sigma_max and sigma_min exactly, so the exponent is (i - 1)/(L - 1), not i/L.")
        raise Mismatch(f"for ({sigma_max:g}, {sigma_min:g}, L = {L}) your levels differ from the geometric "
                       f"schedule by {relative_error(out, ref):.2g} (relative); expected "
                       f"{[round(v, 4) for v in ref.tolist()][:4]} ...")
    return ("matches scorelab's geometric_sigmas for three schedules: a constant ratio between neighbours "
            "keeps the overlap of p_sigma_i and p_sigma_(i+1) the same at every level.")


# -- A2: the NCSN loss for given levels and noise -------------------------------------------

class _ToyScore(torch.nn.Module):
    """A noise-conditional score with two parameters, ``-a (x - b) / (1 + sigma^2)``, in float64.

    ``sigma`` may be a number, a 0-d tensor, or an (M,) / (M, 1) tensor of per-point levels.
    """

    def __init__(self, d: int):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))
        self.b = torch.nn.Parameter(torch.linspace(-0.5, 0.5, d, dtype=F64))

    def forward(self, x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype)
        if s.ndim == 1:
            s = s[:, None]
        return -self.a * (x - self.b) / (1 + s**2)


def _loss_setup():
    g = torch.Generator().manual_seed(432)
    N, d = 256, 3
    x = 1.5 * torch.randn(N, d, generator=g, dtype=F64)
    sigmas = geometric_sigmas(5.0, 0.1, 6, dtype=F64)
    idx = torch.randint(0, len(sigmas), (N,), generator=g)
    z = torch.randn(N, d, generator=g, dtype=F64)
    return _ToyScore(d), x, sigmas, idx, z


def _grads(loss: torch.Tensor, model) -> torch.Tensor | None:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return None
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True, retain_graph=True)
    return torch.cat([torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
                      for p, g in zip(model.parameters(), grads, strict=True)])


@register("4.3.A2", "the NCSN loss for given levels and noise", points=2.0, answers=('ncsn_loss_given_noise',), hidden=False)
def _ncsn_loss(fn):
    model, x, sigmas, idx, z = _loss_setup()
    N, d = x.shape
    out = call(fn, model, x.clone(), sigmas.clone(), idx.clone(), z.clone(), name="ncsn_loss_given_noise")
    if isinstance(out, (float, int)):
        raise Mismatch("return the loss as a torch scalar tensor, not a Python number: .item() or float() "
                       "cuts the autograd graph, and the optimiser needs the gradient.")
    if not isinstance(out, torch.Tensor):
        raise Mismatch(f"ncsn_loss_given_noise should return a scalar torch.Tensor, got {type(out).__name__}")
    if out.numel() == N:
        raise Mismatch(f"you return one value per example (shape {tuple(out.shape)}); the loss is their "
                       "mean over the batch, a single number.")
    if out.numel() != 1:
        raise Mismatch(f"ncsn_loss_given_noise should return a scalar tensor, got shape {tuple(out.shape)}")
    out = out.reshape(())

    sig = sigmas[idx][:, None]  # (N, 1): the level of each example
    x_noisy = x + sig * z
    s_noisy = model(x_noisy, sigmas[idx])
    per_dim = (sig * s_noisy + z) ** 2  # sigma^2 |s + z / sigma|^2, per coordinate
    ref = 0.5 * per_dim.sum(-1).mean()
    value, ref_value = float(out.detach()), float(ref.detach())
    if not math.isclose(value, ref_value, rel_tol=1e-6):
        alternatives = [
            (0.5 * ((s_noisy + z / sig) ** 2).sum(-1).mean(),
             "the weight lambda(sigma) = sigma^2 is missing: 1/2 |s + z/sigma|^2 is of order d/sigma^2, so "
             "without the weight the smallest levels swamp the loss. Multiply each example by its sigma^2."),
            (0.5 * (sig * (s_noisy + z / sig) ** 2).sum(-1).mean(),
             "the weight is sigma, not sigma^2: lambda(sigma) = sigma^2 makes every level's term of order d."),
            (0.5 * ((sig * s_noisy - z) ** 2).sum(-1).mean(),
             "the sign of the target is flipped: x~ = x + sigma z, so grad_x~ log N(x~; x, sigma^2 I) = "
             "-(x~ - x)/sigma^2 = -z/sigma; the regression target is -z/sigma."),
            (0.5 * per_dim.mean(),
             "you average over the coordinates: the convention of this exercise (and of "
             "scorelab.losses.ncsn_loss) sums the squared error over the d coordinates and averages over "
             "the batch only."),
            (per_dim.sum(-1).mean(), "the factor 1/2 is missing: the loss is 1/2 |sigma s + z|^2 per example."),
            (0.5 * per_dim.sum(),
             "you sum over the batch: the loss is the batch mean, so that it does not grow with N."),
            (0.5 * ((sig * model(x, sigmas[idx]) + z) ** 2).sum(-1).mean(),
             "the score must be evaluated at the noisy point x~ = x + sigma z (the network denoises), not at "
             "the clean x."),
            (0.5 * ((sig * model(x + sig**2 * z, sigmas[idx]) + z) ** 2).sum(-1).mean(),
             "the noisy point is x + sigma z, with the standard deviation sigma, not the variance sigma^2."),
        ]
        for alt, hint in alternatives:
            if math.isclose(value, float(alt.detach()), rel_tol=1e-6):
                raise Mismatch(hint)
        raise Mismatch(f"your loss is {value:.6g} on the test batch, the NCSN objective gives {ref_value:.6g}. "
                       "Per example: sigma = sigmas[idx], x~ = x + sigma z, term 1/2 |sigma s(x~, sigma) + z|^2 "
                       "summed over coordinates; then the mean over the batch.")
    g_out, g_ref = _grads(out, model), _grads(ref, model)
    if g_out is None:
        raise Mismatch("the value is right, but the loss does not depend on the model's parameters: it was "
                       "computed under torch.no_grad(), or detached. Keep the graph, or training cannot "
                       "use it.")
    if not _close(g_out, g_ref, 1e-6):
        raise Mismatch(f"the value is right, but the gradient with respect to the model's parameters is off by "
                       f"{relative_error(g_out, g_ref):.2g} (relative): part of the computation was detached "
                       "from the graph (.detach() on the score?).")
    return ("value and gradient match the NCSN objective: with lambda = sigma^2 each example contributes "
            "1/2 |sigma s(x + sigma z, sigma) + z|^2, of order d at every level.")


# -- A3: the step sizes of annealed Langevin ------------------------------------------------

def _zero_score(x, sigma):
    return torch.zeros_like(x)


def _scorelab_step_sizes(eps: float, sigmas: torch.Tensor) -> torch.Tensor:
    """The step size scorelab's sampler uses at each level, read from its callback."""
    steps = []
    sample_annealed_langevin(_zero_score, torch.zeros(1, 1, dtype=F64), sigmas, eps=eps, n_steps_each=1,
                             denoise=False, generator=0, callback=lambda info: steps.append(info["step_size"]))
    return torch.tensor(steps, dtype=F64)


@register("4.3.A3", "step sizes of annealed Langevin", answers=('annealed_step_sizes',), hidden=False)
def _step_sizes(fn):
    cases = ((0.1, geometric_sigmas(10.0, 0.1, 5, dtype=F64)), (2e-5, geometric_sigmas(50.0, 0.01, 6, dtype=F64)),
             (0.1, geometric_sigmas(20.0, 1.0, 10, dtype=F64)))
    for eps, sigmas in cases:
        ref = _scorelab_step_sizes(eps, sigmas)
        out = as_output(call(fn, eps, sigmas.clone(), name="annealed_step_sizes"), ref,
                        f"annealed_step_sizes({eps:g}, sigmas)")
        if _close(out, ref, 1e-6):
            continue
        s, sl2 = sigmas, float(sigmas[-1]) ** 2
        if _close(out, eps * sl2 / s**2, 1e-6):
            raise Mismatch("the ratio is inverted: the step grows with the noise, alpha_i = eps sigma_i^2 / "
                           "sigma_L^2, so the first (largest) level takes the largest steps.")
        if _close(out, eps * s / float(sigmas[-1]), 1e-6):
            raise Mismatch("use sigma_i^2, not sigma_i: the score of p_sigma is of order 1/sigma, so the "
                           "drift alpha s is of order alpha/sigma and the noise sqrt(2 alpha); their ratio is "
                           "the same at every level only when alpha is proportional to sigma^2.")
        if _close(out, eps * s**2, 1e-6):
            raise Mismatch("divide by sigma_L^2: eps is the step of the last (smallest) level, alpha_L = eps.")
        if _close(out, eps * s**2 / float(sigmas[0]) ** 2, 1e-6):
            raise Mismatch("normalise by the smallest level, sigma_L^2, not the largest: eps is the step of "
                           "the last level, alpha_L = eps.")
        if _close(out, torch.full_like(ref, eps), 1e-6):
            raise Mismatch("one step for every level is what annealing avoids: alpha_i = eps sigma_i^2 / "
                           "sigma_L^2, so the step shrinks with the noise.")
        if _close(out, ref.flip(0), 1e-6):
            raise Mismatch("the order is reversed: one step size per level, in the order of sigmas "
                           "(largest noise first).")
        raise Mismatch(f"for eps = {eps:g} your step sizes differ from eps sigma_i^2 / sigma_L^2 by "
                       f"{relative_error(out, ref):.2g} (relative); expected {[f'{v:.4g}' for v in ref.tolist()]}.")
    return ("matches the steps of scorelab's sample_annealed_langevin: alpha_i / sigma_i^2 is constant, so "
            "every level has the same drift-to-noise ratio, and alpha_L = eps.")


# -- A4: the annealed Langevin sampler with given noise -------------------------------------

def _scorelab_noise(x0: torch.Tensor, sigmas: torch.Tensor, eps: float, T: int, seed: int) -> torch.Tensor:
    """The Gaussian noise scorelab's sampler draws with ``seed``: (L, T, N, d), read back from its
    callback in a run with a zero score, where every step is ``x <- x + sqrt(2 alpha) z``."""
    xs, steps = [x0], []

    def record(info):
        xs.append(info["x"])
        steps.append(info["step_size"])

    sample_annealed_langevin(_zero_score, x0, sigmas, eps=eps, n_steps_each=T, denoise=False, generator=seed,
                             callback=record)
    z = torch.stack([(b - a) / math.sqrt(2 * h) for a, b, h in zip(xs[:-1], xs[1:], steps, strict=True)])
    return z.reshape(len(sigmas), T, *x0.shape)


def _annealed_variant(score_fn, x0, score_sigmas, alphas, noise, *, noise_factor=2.0, drift_sign=1.0):
    """A plain loop used only to recognise wrong answers (levels, steps and noise as given)."""
    x = x0.clone()
    for i, (sigma, alpha) in enumerate(zip(score_sigmas, alphas, strict=True)):
        for t in range(noise.shape[1]):
            x = x + drift_sign * alpha * score_fn(x, sigma) + math.sqrt(noise_factor * alpha) * noise[i, t]
    return x


def _sampler_setup():
    g = torch.Generator().manual_seed(434)
    x0 = (torch.rand(300, 2, generator=g, dtype=F64) * 2 - 1) * 8
    sigmas = geometric_sigmas(10.0, 0.5, 5, dtype=F64)
    return noised_score(three_modes()), x0, sigmas, 0.02, 6


@register("4.3.A4", "annealed Langevin dynamics", points=2.0, answers=('annealed_langevin',), hidden=False)
def _annealed(fn):
    score, x0, sigmas, eps, T = _sampler_setup()
    seed = 4343
    noise = _scorelab_noise(x0, sigmas, eps, T, seed)
    ref = sample_annealed_langevin(score, x0, sigmas, eps=eps, n_steps_each=T, denoise=False, generator=seed)
    x_in = x0.clone()
    out = call(fn, score, x_in, sigmas.clone(), eps, noise.clone(), name="annealed_langevin")
    out = as_output(out, ref, "annealed_langevin(score_fn, x0, sigmas, eps, noise)")
    if not torch.equal(x_in, x0):
        raise Mismatch("your sampler changed x0 in place (x += ... on the input): start from x = x0.clone(), or "
                       "write x = x + ..., so that the caller's starting points survive.")
    if _close(out, ref, 1e-8):
        return ("matches scorelab's sample_annealed_langevin step for step with the same noise: large levels "
                "move the particles between the modes, small ones sharpen them, at equal drift-to-noise ratio.")
    lv = sigmas.tolist()
    sl2 = lv[-1] ** 2
    alphas = [eps * s**2 / sl2 for s in lv]
    variants = [
        (dict(score_sigmas=lv, alphas=alphas, noise_factor=1.0),
         "the noise term is sqrt(2 alpha_i) z, not sqrt(alpha_i) z: with too little noise the chain samples "
         "p^2 (renormalised), a sharper law than p."),
        (dict(score_sigmas=lv, alphas=alphas, drift_sign=-1.0),
         "the drift has the wrong sign: x <- x + alpha_i s(x, sigma_i) + ..., the score points uphill towards "
         "the data."),
        (dict(score_sigmas=lv, alphas=[eps] * len(lv)),
         "every level uses the same step eps: the step must shrink with the noise, alpha_i = eps sigma_i^2 / "
         "sigma_L^2 (part A3), or the large-noise levels hardly move the particles."),
        (dict(score_sigmas=lv, alphas=[eps * sl2 / s**2 for s in lv]),
         "the step-size ratio is inverted: alpha_i = eps sigma_i^2 / sigma_L^2 (largest steps at the largest "
         "noise)."),
        (dict(score_sigmas=lv, alphas=[eps * s / lv[-1] for s in lv]),
         "the step size uses sigma_i instead of sigma_i^2: alpha_i = eps sigma_i^2 / sigma_L^2."),
        (dict(score_sigmas=lv[::-1], alphas=alphas[::-1]),
         "the levels run the wrong way: start at the largest noise sigma_1 and end at sigma_L, as in "
         "sigmas (noise[i] belongs to level i)."),
        (dict(score_sigmas=lv[::-1], alphas=[eps * s**2 / lv[0] ** 2 for s in lv[::-1]]),
         "the levels run the wrong way: start at the largest noise sigma_1 and end at sigma_L, as in "
         "sigmas (noise[i] belongs to level i), with alpha_i = eps sigma_i^2 / sigma_L^2."),
        (dict(score_sigmas=[lv[-1]] * len(lv), alphas=alphas),
         "the score is always evaluated at the last level: pass the current level's sigma_i to score_fn(x, "
         "sigma_i)."),
        (dict(score_sigmas=[lv[0]] * len(lv), alphas=alphas),
         "the score is always evaluated at the first level: pass the current level's sigma_i to score_fn(x, "
         "sigma_i)."),
    ]
    for kwargs, hint in variants:
        if _close(out, _annealed_variant(score, x0, noise=noise, **kwargs), 1e-8):
            raise Mismatch(hint)
    if _close(out, ref + sl2 * score(ref, lv[-1]), 1e-8):
        raise Mismatch("the final Tweedie step x + sigma_L^2 s(x, sigma_L) is not part of this function: "
                       "return the particles after the last Langevin step.")
    err = relative_error(out, ref)
    raise Mismatch(f"your particles differ from annealed Langevin with the same noise by {err:.2g} (relative). "
                   "For each level i (largest sigma first), for t in range(T): x <- x + alpha_i s(x, sigma_i) + "
                   "sqrt(2 alpha_i) noise[i, t], with alpha_i = eps sigma_i^2 / sigma_L^2.")


# -- B1: the weight of the smallest mode -----------------------------------------------------

def _basin_share() -> float:
    """Share of the smallest mode's basin under the uniform start on [-10, 10]^2: what plain Langevin,
    which cannot cross between the modes, reports."""
    g = torch.Generator().manual_seed(4351)
    u = (torch.rand(200_000, 2, generator=g, dtype=F64) * 2 - 1) * B1_BOX
    return float(mode_weights(u, three_modes())[2])


def b1_tolerance(n: int, p: float = B1_WEIGHTS[2]) -> float:
    """4 binomial standard errors of a share p among n particles, plus the sampler's own slack."""
    return 4 * math.sqrt(p * (1 - p) / n) + B1_SAMPLER_SLACK


@register("4.3.B1", "the weight of the smallest mode, with and without annealing", points=2.0, answers=('w_small', 'n_particles'), hidden=False)
def _small_mode(value, n_particles):
    v = as_number(value, "w_small")
    n = as_number(n_particles, "n_particles")
    if n != int(n) or n < 1:
        raise Mismatch(f"n_particles should be the number of particles you ran (a positive integer), got {n:g}")
    n = int(n)
    truth = B1_WEIGHTS[2]
    if n < B1_MIN_PARTICLES:
        raise Mismatch(f"with {n} particles the binomial standard error of a 0.1 share is "
                       f"{math.sqrt(truth * (1 - truth) / n):.3f}: too coarse to tell a right sampler from a "
                       f"wrong one. Use at least {B1_MIN_PARTICLES} particles.")
    se = math.sqrt(truth * (1 - truth) / n)
    tol = b1_tolerance(n)
    if v > 1:
        if abs(v / 100 - truth) < tol:
            raise Mismatch(f"{v:g} looks like a percentage: report the share as a fraction between 0 and 1.")
        if abs(v / n - truth) < tol:
            raise Mismatch(f"{v:g} looks like a count of particles: divide by n_particles = {n}.")
        raise Mismatch(f"w_small is a share of the particles, a number between 0 and 1; got {v:g}.")
    if v < 0:
        raise Mismatch(f"w_small is a share of the particles, a number between 0 and 1; got {v:g}.")
    if abs(v - truth) < tol:
        return (f"{v:.3f} against the true weight 0.1 (binomial SE {se:.3f} with {n} particles): at large sigma "
                "the modes merge, the particles redistribute, and they are already sorted by weight when the "
                "valleys between the modes open up.")
    plain = _basin_share()
    if abs(v - plain) < 4 * math.sqrt(plain * (1 - plain) / n) + B1_SAMPLER_SLACK:
        raise Mismatch(f"{v:.3f} is about the share of the starting box that drains into the small mode "
                       f"({plain:.3f}): what plain Langevin (or a single small sigma) gives. Near each mode the "
                       "score is that of its own Gaussian and carries no trace of the weights, and the valleys "
                       "between the modes are too deep to cross, so each particle stays in the basin where it "
                       "started. Run the annealed sampler, starting at a sigma_1 comparable to the distance "
                       "between the modes.")
    for w, which in ((B1_WEIGHTS[1], "the middle mode at (5, -5)"), (B1_WEIGHTS[0], "the heavy mode at (5, 5)")):
        if abs(v - w) < tol:
            raise Mismatch(f"{v:.3f} is close to the weight of {which}; report the share of the smallest mode, "
                           "the one at (-5, 0) (index 2 of mode_weights).")
    raise Mismatch(f"{v:.3f} is {abs(v - truth) / se:.1f} binomial standard errors ({se:.3f} with {n} particles) "
                   "from the true weight 0.1. Check that sigma_1 is comparable to the largest distance between the "
                   "modes (about 11), that each level runs enough steps (T of order 100), and that you count the "
                   "particles of the mode at (-5, 0).")
