"""Every exported sampler against the sampler contract of CONTRIBUTING.md.

The samplers are discovered from the ``__all__`` of every sampler module (names starting with
``sample_``), so a new sampler without a case here fails ``test_every_sampler_has_a_case``.
Each case states what the sampler's docstring documents: the callback keys, the number of
score evaluations for its grid arguments and whether it draws random numbers.  The checks:

- the signature: ``score_fn`` first, the start called ``x`` (then ``sde`` for the SDE samplers),
  ``generator`` (random samplers only), ``callback`` and ``stats`` keyword-only;
- the same seed gives the same output and another seed another one (random samplers), the same
  output on every call (deterministic ones);
- the input is never written to; float32 and float64 come back in their own dtype; a batch of
  one point works;
- the callback gets one dict per step with exactly the documented keys, ``i`` counting from 0,
  ``x`` shaped like the input, ``t`` for time samplers and ``sigma`` for the noise-level sampler;
- ``stats["nfe"]`` equals the documented count and the rows the score function was given;
- ``denoised``, where reported, is Tweedie's estimate at the point and time of the previous
  step, checked in closed form on Gaussian data;
- an explicit time grid with ``n_steps`` or ``t_eps`` is an error, not silently preferred.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import pytest
import torch

import scorelab as sl
from scorelab import conditional, manifold, mcmc, samplers, sde_samplers
from scorelab.sdes import VPSDE, exact_score_fn

torch.set_num_threads(1)

MODULES = (samplers, mcmc, sde_samplers, conditional, manifold)
EXPORTED = {name: getattr(m, name) for m in MODULES for name in m.__all__ if name.startswith("sample_")}

TARGET = sl.GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.5, 0.5]], [0.5, 0.8])
SDE = VPSDE()
SDE_SCORE = exact_score_fn(SDE, TARGET)
NOISED = sl.noised_score(TARGET)
SIGMAS = [2.0, 1.0, 0.5]

LANGEVIN = {"i", "x", "step_size"}
PC_KEYS = {"i", "x", "t", "denoised", "x_mean", "step_size", "kind", "denoise"}


@dataclass
class Case:
    """How to call one sampler and what its docstring promises.

    ``call(score_fn, x, generator, callback, stats)`` runs it; ``score_kind`` is "x" for
    ``score_fn(x)``, "sigma" for ``score_fn(x, sigma)`` and "t" for ``score_fn(x, t)``;
    ``nfe`` is the documented number of score evaluations (None: the solver decides, then only
    the count of evaluations is compared); ``level`` is "t", "sigma" or None (neither).
    """

    call: object
    keys: set
    nfe: int | None
    random: bool = True
    score_kind: str = "x"
    level: str | None = None
    extra: dict = field(default_factory=dict)


def _lp(x):
    return TARGET.log_prob(x)


CASES = {
    "sample_langevin": [Case(lambda f, x, g, cb, st: samplers.sample_langevin(f, x, 0.05, 5, generator=g, callback=cb,
                                                                              stats=st), LANGEVIN, 5)],
    "sample_mala": [Case(lambda f, x, g, cb, st: samplers.sample_mala(f, _lp, x, 0.05, 5, generator=g, callback=cb,
                                                                      stats=st), LANGEVIN | {"accepted"}, 6)],
    "sample_annealed_langevin": [
        Case(lambda f, x, g, cb, st: samplers.sample_annealed_langevin(f, x, SIGMAS, eps=0.01, n_steps_each=2,
                                                                       generator=g, callback=cb, stats=st),
             {"i", "x", "sigma", "denoised", "step_size", "level", "denoise"}, 3 * 2 + 1, score_kind="sigma",
             level="sigma"),
        Case(lambda f, x, g, cb, st: samplers.sample_annealed_langevin(f, x, SIGMAS, eps=0.01, n_steps_each=2,
                                                                       denoise=False, generator=g, callback=cb,
                                                                       stats=st),
             {"i", "x", "sigma", "denoised", "step_size", "level", "denoise"}, 3 * 2, score_kind="sigma",
             level="sigma"),
    ],
    "sample_preconditioned_langevin": [
        Case(lambda f, x, g, cb, st: mcmc.sample_preconditioned_langevin(f, x, 0.05, 5, preconditioner=[1.0, 2.0],
                                                                         generator=g, callback=cb, stats=st),
             LANGEVIN, 5),
        Case(lambda f, x, g, cb, st: mcmc.sample_preconditioned_langevin(f, x, 0.05, 5, preconditioner=[1.0, 2.0],
                                                                         log_prob_fn=_lp, generator=g, callback=cb,
                                                                         stats=st),
             LANGEVIN | {"accepted"}, 6),
    ],
    "sample_kinetic_langevin": [
        Case(lambda f, x, g, cb, st: mcmc.sample_kinetic_langevin(f, x, 0.1, 5, generator=g, callback=cb, stats=st),
             LANGEVIN | {"p", "friction"}, 6),
    ],
    "sample_hmc": [Case(lambda f, x, g, cb, st: mcmc.sample_hmc(f, _lp, x, 0.1, 3, 4, generator=g, callback=cb,
                                                                stats=st), LANGEVIN | {"accepted", "path"}, 1 + 4 * 3)],
    "sample_parallel_tempering": [
        Case(lambda f, x, g, cb, st: mcmc.sample_parallel_tempering(f, _lp, x, [1.0, 2.0], 0.05, 5, generator=g,
                                                                    callback=cb, stats=st),
             LANGEVIN | {"x_all", "temperatures", "swapped"}, 2 * (5 + 1)),
    ],
    "sample_projected_langevin": [
        Case(lambda f, x, g, cb, st: manifold.sample_projected_langevin(f, x, 0.01, 5, radius=1.5, generator=g,
                                                                        callback=cb, stats=st), LANGEVIN, 5),
    ],
    "sample_euler_maruyama": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_euler_maruyama(f, x, SDE, n_steps=5, generator=g,
                                                                        callback=cb, stats=st),
             PC_KEYS, 5 + 1, score_kind="t", level="t"),
    ],
    "sample_reverse_diffusion": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_reverse_diffusion(f, x, SDE, n_steps=5, denoise=False,
                                                                           generator=g, callback=cb, stats=st),
             PC_KEYS, 5, score_kind="t", level="t"),
    ],
    "sample_pc": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_pc(f, x, SDE, n_steps=4, n_corrector_steps=2, generator=g,
                                                            callback=cb, stats=st),
             PC_KEYS, 4 * (1 + 2) + 1, score_kind="t", level="t"),
        Case(lambda f, x, g, cb, st: sde_samplers.sample_pc(f, x, SDE, ts=sde_samplers.karras_times(SDE, 3),
                                                            predictor=None, generator=g, callback=cb, stats=st),
             PC_KEYS, 3 * 1 + 1, score_kind="t", level="t"),
    ],
    "sample_probability_flow": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_probability_flow(f, x, SDE, n_steps=4, callback=cb,
                                                                          stats=st),
             {"i", "x", "t", "denoised", "step_size", "denoise"}, 2 * 4 + 1, random=False, score_kind="t", level="t"),
        Case(lambda f, x, g, cb, st: sde_samplers.sample_probability_flow(f, x, SDE, n_steps=4, method="euler",
                                                                          denoise=False, callback=cb, stats=st),
             {"i", "x", "t", "denoised", "step_size", "denoise"}, 4, random=False, score_kind="t", level="t"),
    ],
    "sample_probability_flow_adaptive": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_probability_flow_adaptive(f, x, SDE, rtol=1e-3, atol=1e-3,
                                                                                   t_eval=[0.5], callback=cb,
                                                                                   stats=st),
             {"i", "x", "t", "denoise"}, None, random=False, score_kind="t", level="t"),
    ],
    "sample_heun_karras": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_heun_karras(f, x, SDE, n_steps=4, callback=cb, stats=st),
             {"i", "x", "t", "denoised", "noise_ratio", "denoise"}, 2 * 4 + 1, random=False, score_kind="t",
             level="t"),
    ],
    "sample_dpm_solver_2": [
        Case(lambda f, x, g, cb, st: sde_samplers.sample_dpm_solver_2(f, x, SDE, n_steps=4, spacing="karras",
                                                                      callback=cb, stats=st),
             {"i", "x", "t", "denoised", "denoise"}, 2 * 4 + 1, random=False, score_kind="t", level="t"),
    ],
}

PARAMS = [pytest.param(name, k, id=f"{name}-{k}") for name in sorted(EXPORTED) for k in range(len(CASES.get(name, [])))]


class Counted:
    """Wraps a score function of the case's kind and counts the rows it was given."""

    def __init__(self, kind: str):
        self.kind, self.rows = kind, 0

    def __call__(self, x, *level):
        self.rows += x.shape[0]
        if self.kind == "x":
            return TARGET.score(x)
        if self.kind == "sigma":
            return NOISED(x, *level)
        return SDE_SCORE(x, *level)


def _start(case: Case, n: int, dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if case.score_kind == "t":
        return SDE.prior_sampling((n, 2), generator=g, dtype=dtype)
    return (1.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)).to(dtype)


def _run(case: Case, x, seed=None, callback=None):
    stats = {}
    score = Counted(case.score_kind)
    out = case.call(score, x, seed if case.random else None, callback, stats)
    return out, stats, score


def test_every_sampler_has_a_case():
    assert EXPORTED, "no sampler found in the sampler modules' __all__"
    missing = sorted(set(EXPORTED) - set(CASES))
    assert not missing, f"samplers without a contract case in tests/test_sampler_contract.py: {missing}"
    assert not sorted(set(CASES) - set(EXPORTED)), "a case names a sampler that is not exported"


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_signature(name):
    fn = EXPORTED[name]
    params = inspect.signature(fn).parameters
    names = list(params)
    assert names[0] in ("score_fn", "tangent_score_fn"), names
    assert "x" in names and "x0" not in names, names
    positional = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert "x" in positional[:3], positional  # score_fn, [log_prob_fn,] x
    if name in sde_samplers.__all__:
        assert positional[:3] == [names[0], "x", "sde"], positional
    for kw in ("callback", "stats"):
        assert params[kw].kind is params[kw].KEYWORD_ONLY and params[kw].default is None
    random = {c.random for c in CASES[name]}
    assert len(random) == 1
    if random.pop():
        assert params["generator"].kind is params["generator"].KEYWORD_ONLY and params["generator"].default is None
    else:
        assert "generator" not in params, f"{name} draws no random numbers, so it takes no generator"
    # every callback key is documented (in the sampler's docstring or its module's)
    docs = (fn.__doc__ or "") + (inspect.getmodule(fn).__doc__ or "")
    for case in CASES[name]:
        undocumented = sorted(key for key in case.keys if f'"{key}"' not in docs)
        assert not undocumented, f"{name}: callback keys not documented: {undocumented}"


@pytest.mark.parametrize("name, k", PARAMS)
def test_reproducible_and_input_untouched(name, k):
    case = CASES[name][k]
    x = _start(case, 16, torch.float64)
    x_before = x.clone()
    a, _, _ = _run(case, x, seed=3)
    assert torch.equal(x, x_before), "the sampler wrote to its input"
    b, _, _ = _run(case, x, seed=3)
    assert torch.equal(a, b)
    if case.random:
        c, _, _ = _run(case, x, seed=4)
        assert not torch.equal(a, c), "another seed gave the same output: is the generator used?"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name, k", PARAMS)
def test_dtype_and_a_batch_of_one(name, k, dtype):
    case = CASES[name][k]
    for n in (8, 1):
        x = _start(case, n, dtype)
        out, _, _ = _run(case, x, seed=5)
        assert out.dtype == dtype and out.shape == x.shape
        assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name, k", PARAMS)
def test_callback_keys_and_nfe(name, k):
    case = CASES[name][k]
    x = _start(case, 8, torch.float64)
    frames = []
    out, stats, score = _run(case, x, seed=6, callback=frames.append)
    assert frames, "the callback was never called"
    for j, f in enumerate(frames):
        assert set(f) == case.keys, f"step {j}: keys {sorted(f)}, documented {sorted(case.keys)}"
        assert f["i"] == j
        assert f["x"].shape == x.shape and f["x"].dtype == x.dtype
        if "denoised" in f:
            assert f["denoised"].shape == x.shape
    assert torch.equal(frames[-1]["x"], out)
    has_t, has_sigma = "t" in case.keys, "sigma" in case.keys
    assert (has_t, has_sigma) == (case.level == "t", case.level == "sigma")
    assert score.rows % x.shape[0] == 0
    counted = score.rows // x.shape[0]  # score evaluations per example (per chain)
    assert stats["nfe"] == counted
    if case.nfe is not None:
        assert stats["nfe"] == case.nfe
    if "acceptance_rate" in stats:
        assert 0.0 <= stats["acceptance_rate"] <= 1.0


# -- "denoised" is Tweedie's estimate, checked on N(0, I) data in closed form ----------------

GAUSS = sl.standard_gaussian(2)


def _tweedie_gaussian(x, level, kind):
    """E[x_0 | x] for x_0 ~ N(0, I): x / (1 + sigma^2) at noise level sigma; alpha(t) x for the VP SDE
    (where alpha^2 + sigma^2 = 1)."""
    if kind == "sigma":
        return x / (1 + level**2)
    return float(SDE.alpha(torch.tensor([level], dtype=torch.float64))) * x


@pytest.mark.parametrize("name, k", [p for p in PARAMS if "denoised" in CASES[p.values[0]][p.values[1]].keys])
def test_denoised_is_tweedie_at_the_previous_point(name, k):
    case = CASES[name][k]
    exact = sl.noised_score(GAUSS) if case.score_kind == "sigma" else exact_score_fn(SDE, GAUSS)
    x = _start(case, 6, torch.float64)
    frames = []
    case.call(exact, x, 2 if case.random else None, frames.append, {})
    prev_x, prev_level = x, SDE.T
    for f in frames:
        if f.get("denoise"):
            torch.testing.assert_close(f["denoised"], f["x"], rtol=0, atol=0)
            continue
        if case.level == "sigma":
            level = f["sigma"]
        else:  # a Langevin corrector evaluates at the time it stays at, every other step where it starts
            level = f["t"] if f.get("kind") == "corrector" else prev_level
        torch.testing.assert_close(f["denoised"], _tweedie_gaussian(prev_x, level, case.level), rtol=1e-10,
                                   atol=1e-10)
        prev_x = f["x"]
        prev_level = f.get("t", prev_level)


# -- grid arguments never override each other ------------------------------------------------

@pytest.mark.parametrize("name", [n for n in sorted(EXPORTED) if "ts" in inspect.signature(EXPORTED[n]).parameters])
def test_an_explicit_grid_excludes_n_steps_and_t_eps(name):
    fn = EXPORTED[name]
    x = SDE.prior_sampling((4, 2), generator=0)
    ts = sde_samplers.karras_times(SDE, 3)
    fn(SDE_SCORE, x, SDE, ts=ts)  # the grid alone is fine
    with pytest.raises(ValueError, match="ts: expected either"):
        fn(SDE_SCORE, x, SDE, ts=ts, n_steps=3)
    with pytest.raises(ValueError, match="t_eps"):
        fn(SDE_SCORE, x, SDE, ts=ts, t_eps=1e-3)


def test_rho_only_with_the_karras_spacing():
    x = SDE.prior_sampling((4, 2), generator=0)
    with pytest.raises(ValueError, match="rho"):
        sde_samplers.sample_dpm_solver_2(SDE_SCORE, x, SDE, n_steps=3, rho=7.0)
    a = sde_samplers.sample_dpm_solver_2(SDE_SCORE, x, SDE, n_steps=3, spacing="karras")
    b = sde_samplers.sample_dpm_solver_2(SDE_SCORE, x, SDE, n_steps=3, spacing="karras", rho=7.0)
    assert torch.equal(a, b)  # 7 is the documented default
