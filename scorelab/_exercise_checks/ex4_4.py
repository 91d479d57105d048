"""Checks of exercise 4.4 (Langevin sampling in depth): parts A1, A2, A3, B1, B2, C1.

References: ``scorelab.diagnostics.ula_stationary_variance`` and ``ula_autocorrelation``
(the closed forms of section 4.4.2, each cross-checked here against the AR(1) fixed point),
a float64 Metropolis-Hastings ratio from ``torch.distributions.Normal`` proposal densities,
a float64 leapfrog loop plus reversibility and energy-error tests, and
``scorelab.diagnostics.effective_sample_size`` on seeded AR(1) chains.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, call, close, register, relative_error
from ..diagnostics import effective_sample_size, ula_autocorrelation, ula_stationary_variance
from ..distributions import GaussianMixture


def _scalar(value, name: str) -> float:
    """A number that may be +inf (A1 returns math.inf beyond the stability limit)."""
    return as_number(value, f"{name} 的返回值", allow_inf=True)


def _rel(a: float, b: float) -> float:
    if math.isinf(a) or math.isinf(b):
        return 0.0 if a == b else math.inf
    return abs(a - b) / max(abs(b), 1e-300)


def _near(a: float, b: float, tol: float = 1e-7) -> bool:
    return _rel(a, b) < tol  # False for NaN


def _uniform(rng, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=F64))


def _integer(rng, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=rng))


def _log_uniform(rng, lo: float, hi: float) -> float:
    return math.exp(_uniform(rng, math.log(lo), math.log(hi)))


# -- A: closed forms of ULA on a Gaussian ---------------------------------------------------

def _ula_variance_ref(eps: float, s2: float) -> float:
    """Stationary variance of ULA on N(0, s2); inf where |a| >= 1 (no stationary law)."""
    a = 1.0 - eps / s2
    if abs(a) >= 1.0:
        return math.inf
    fixed_point = 2.0 * eps / (1.0 - a * a)          # v = a^2 v + 2 eps
    lib = ula_stationary_variance(eps, s2)
    assert _near(fixed_point, lib, 1e-9), (fixed_point, lib)
    return lib


def _ula_tau_ref(eps: float, s2: float) -> float:
    """1 + 2 sum_k rho_k with rho_k from ula_autocorrelation, summed until a^k < 1e-18."""
    a = 1.0 - eps / s2
    n_lags = 1 if a == 0 else max(10, math.ceil(math.log(1e-18) / math.log(abs(a))))
    rho = ula_autocorrelation(eps, s2, torch.arange(1, n_lags + 1))
    tau = 1.0 + 2.0 * float(rho.sum())
    assert _near(tau, (1 + a) / (1 - a), 1e-9), (tau, (1 + a) / (1 - a))
    return tau


def _ula_cases(rng):
    """(stable, unstable) (eps, s2) pairs: the sheet's, or drawn from the whole range for the hidden variant."""
    if rng is None:
        stable = ((0.1, 1.0), (0.5, 1.0), (1.9, 1.0), (0.05, 0.16), (0.3, 0.16), (1.5, 4.0), (1e-4, 2.0), (7.99, 4.0))
        return stable, ((2.5, 1.0), (0.4, 0.16), (2.0, 1.0), (8.0, 4.0))
    stable, unstable = [], []
    for _ in range(5):
        s2 = _log_uniform(rng, 0.01, 100.0)
        stable.append((s2 * _log_uniform(rng, 1e-4, 1.99), s2))
        unstable.append((s2 * _uniform(rng, 2.0, 5.0), s2))
    return stable, unstable


@register("4.4.A1", "stationary variance of ULA on a Gaussian", answers=("ula_variance",))
def _ula_variance(fn, *, rng=None):
    stable, unstable = _ula_cases(rng)
    for eps, s2 in stable:
        ref = _ula_variance_ref(eps, s2)
        v = _scalar(call(fn, eps, s2, name="ula_variance"), "ula_variance(eps, s2)")
        if _near(v, ref):
            continue
        where = f"在 eps = {eps:g}、s2 = {s2:g} 时"
        if _near(v, s2):
            raise Mismatch(f"{where}你返回的是目标本身的方差 s2；但有限步长的 ULA 有偏差：它的链停在一个更宽的分布上"
                           f"（这里是 {ref:.4g}）。请求 AR(1) 递推 x' = a x + sqrt(2 eps) z 的不动点。")
        if _near(v, ref / 2):
            raise Mismatch(f"{where}你的方差是正确值的一半：一步的噪声是 sqrt(2 eps) z，方差是 2 eps 而不是 eps"
                           "（v = a^2 v + 2 eps）。")
        if _near(v, s2 + eps / 2):
            raise Mismatch(f"{where}s2 + eps/2 只是偏差的一阶展开；v = a^2 v + 2 eps 的精确不动点是 2 eps / (1 - a^2)"
                           "。")
        if _near(v, s2 / (1 + eps / (2 * s2))):
            raise Mismatch(f"{where}你的方差比 s2 小，但 ULA 会过冲：链比目标更宽。检查 1 - a^2 = (eps/s2)(2 - eps/s2) "
                           "里的符号。")
        a_wrong = 1 - eps * s2
        if s2 != 1.0 and abs(a_wrong) < 1 and _near(v, 2 * eps / (1 - a_wrong**2)):
            raise Mismatch(f"{where}你用了 a = 1 - eps * s2；N(0, s2) 的分数是 -x / s2，所以一步把 x 乘以 "
                           "a = 1 - eps / s2。")
        if math.isinf(v):
            raise Mismatch(f"{where}链是稳定的（|1 - eps/s2| < 1），平稳方差是有限的 {ref:.6g}，你却返回了 inf。")
        raise Mismatch(f"{where}你返回 {v:.6g}，平稳方差是 {ref:.6g}。N(0, s2) 上 ULA 的一步是 "
                       "x' = (1 - eps/s2) x + sqrt(2 eps) z；对两边取方差。")
    for eps, s2 in unstable:
        v = _scalar(call(fn, eps, s2, name="ula_variance"), "ula_variance(eps, s2)")
        if v != math.inf:
            edge = "（恰好在极限上：a = -1，方差每一步增加 2 eps）" if eps == 2 * s2 else ""
            raise Mismatch(f"在 eps = {eps:g} >= 2 s2 = {2 * s2:g} 时{edge}|a| = |1 - eps/s2| >= 1，递推发散，不存在平"
                           "稳"
                           f"方差；这时要返回 math.inf（你返回的是 {v:.4g}）。")
    return ("在多组稳定的 (eps, s2) 上精确，从 eps = 2 s2 起返回 inf：相对偏差 eps / (2 s2 - eps) 是步长的一阶量，"
            "目标最窄的方向决定了稳定极限。")


@register("4.4.A2", "integrated autocorrelation time of ULA", answers=("ula_tau",))
def _ula_tau(fn, *, rng=None):
    if rng is None:
        cases = ((0.2, 1.0), (0.01, 4.0), (0.16, 4.0), (1.0, 1.0), (1.5, 1.0), (0.3, 0.16), (1e-4, 1.0), (1.99, 1.0))
    else:
        cases = tuple((s2 * _log_uniform(rng, 1e-4, 1.99), s2) for s2 in (_log_uniform(rng, 0.01, 100.0)
                                                                         for _ in range(5)))
    for eps, s2 in cases:
        ref = _ula_tau_ref(eps, s2)
        t = as_number(call(fn, eps, s2, name="ula_tau"), "ula_tau(eps, s2) 的返回值")
        if _near(t, ref):
            continue
        a = 1 - eps / s2
        where = f"在 eps = {eps:g}、s2 = {s2:g}（a = {a:g}）时"
        if _near(t, 1 / (1 - a)):
            raise Mismatch(f"{where}1 / (1 - a) = sum_(k>=0) a^k 只把每个延迟算了一次；tau = 1 + 2 sum_(k>=1) rho_k "
                           "把 0 两侧的延迟都算上，结果是 (1 + a) / (1 - a)。")
        if _near(t, 2 * a / (1 - a)):
            raise Mismatch(f"{where}少了延迟 0 的那一项：tau = 1 + 2 sum_(k>=1) a^k（rho_0 = 1）。")
        if a < 0 and _near(t, (1 + abs(a)) / (1 - abs(a))):
            raise Mismatch(f"{where}eps > s2 时系数 a 是负的：链每一步都变号（对偶的，antithetic），rho_k = a^k 正负交"
                           "替，"
                           "tau = (1 + a)/(1 - a) < 1。")
        if _near(t, 1 / ref):
            raise Mismatch(f"{where}这是 1 / tau，即每一步的有效样本数；tau 本身是每个有效样本需要的步数。")
        a1 = 1 - eps
        if s2 != 1.0 and abs(a1) < 1 and _near(t, (1 + a1) / (1 - a1)):
            raise Mismatch(f"{where}你用了 a = 1 - eps，这只在 s2 = 1 时成立；在 N(0, s2) 上系数是 a = 1 - eps / s2。")
        raise Mismatch(f"{where}你返回 {t:.6g}，tau 是 {ref:.6g}：rho_k = a^k，a = 1 - eps/s2，再求和。")
    return ("在多组 (eps, s2) 上 tau = (1 + a)/(1 - a) = (2 s2 - eps)/eps：小 eps 时每个有效样本约需 2 s2/eps 步，"
            "s2 < eps < 2 s2 时 tau 小于 1（对偶的链）。")


def _bias_limited_step(variances: torch.Tensor, delta: float) -> float:
    """The largest eps whose relative variance bias is <= delta on every axis, by bisection."""
    lo, hi = 0.0, 2.0 * float(variances.min())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        bias = float((ula_stationary_variance(mid, variances) / variances - 1).max())
        lo, hi = (mid, hi) if bias <= delta else (lo, mid)
    return lo


def _efficiency_ref(variances: torch.Tensor, delta: float):
    eps = _bias_limited_step(variances, delta)
    taus = [_ula_tau_ref(eps, float(v)) for v in variances]
    return eps, 1000.0 / max(taus), taus


def _pair(value, name: str):
    if isinstance(value, torch.Tensor) and value.numel() == 2:
        value = value.detach().reshape(-1).tolist()
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{name} 应当返回一对数 (eps, ess_per_1000)，实际返回的是 {type(value).__name__}"
                       + (f"（长度 {len(value)}）" if isinstance(value, (tuple, list)) else "") + "。")
    return as_number(value[0], f"{name}[0]（eps）"), as_number(value[1], f"{name}[1]（ess_per_1000）")


def _efficiency_cases(rng):
    if rng is None:
        return ((torch.tensor([0.16, 4.0], dtype=F64), 0.1), (torch.tensor([1.0, 1.0, 1.0], dtype=F64), 0.05),
                (torch.tensor([2.0, 0.5, 8.0, 1.0], dtype=F64), 0.2), (torch.tensor([0.7], dtype=F64), 0.01))
    cases = []
    for _ in range(3):
        d = _integer(rng, 1, 6)
        variances = torch.exp(math.log(0.01) + (math.log(100.0) - math.log(0.01)) * torch.rand(d, generator=rng,
                                                                                              dtype=F64))
        cases.append((variances, _log_uniform(rng, 1e-3, 0.5)))
    return tuple(cases)


@register("4.4.A3", "ULA's efficiency at a given bias", points=2.0, answers=("ula_efficiency",))
def _ula_efficiency(fn, *, rng=None):
    cases = _efficiency_cases(rng)
    for variances, delta in cases:
        eps_ref, ess_ref, taus = _efficiency_ref(variances, delta)
        eps, ess = _pair(call(fn, variances.clone(), delta, name="ula_efficiency"), "ula_efficiency(variances, delta)")
        lam_min, lam_max = float(variances.min()), float(variances.max())
        where = f"对方差 {[round(v, 3) for v in variances.tolist()]} 和 delta = {delta:g}，"
        if not _near(eps, eps_ref, 1e-6):
            if _near(eps, 2 * lam_min * delta, 1e-6):
                raise Mismatch(f"{where}eps = 2 lambda_min delta 用的是一阶偏差 eps / (2 lambda)；精确的相对偏差是 "
                               "eps / (2 lambda - eps)，所以 eps = 2 lambda delta / (1 + delta)。")
            if lam_max > lam_min and _near(eps, 2 * lam_max * delta / (1 + delta), 1e-6):
                raise Mismatch(f"{where}你按最宽的轴定了步长；相对偏差 eps / (2 lambda - eps) 在最窄的轴上最大，"
                               "所以 lambda_min 决定步长。")
            raise Mismatch(f"{where}你的步长是 {eps:.6g}，每个轴上偏差都不超过 delta 的最大步长是 {eps_ref:.6g}。")
        if _near(ess, ess_ref, 1e-6):
            continue
        tau_min, tau_max = min(taus), max(taus)
        a_wide = 1 - eps_ref / lam_max
        if tau_max > tau_min and _near(ess, 1000 / tau_min, 1e-6):
            raise Mismatch(f"{where}这是最窄的轴的 ESS，也就是最好的那个；最差的坐标是最宽的轴，"
                           "它忘记过去最慢（a = 1 - eps / lambda_max）。")
        if _near(ess, 1 / tau_max, 1e-6):
            raise Mismatch(f"{where}这是每次分数调用的 ESS；题目问的是每 1000 次调用。")
        if _near(ess, tau_max, 1e-6) or _near(ess, 1000 * tau_max, 1e-6):
            raise Mismatch(f"{where}这是 tau（的倍数），即每个有效样本的步数；每 1000 步的 ESS 是 1000 / tau。")
        if _near(ess, 1000 * (1 - a_wide), 1e-6):
            raise Mismatch(f"{where}1000 (1 - a) 用的是 tau = 1 / (1 - a)；积分自相关时间是 (1 + a) / (1 - a)（A2）。")
        raise Mismatch(f"{where}步长对了（{eps_ref:.6g}），但每 1000 次调用的 ESS 应为 {ess_ref:.6g}，你返回 {ess:.6g}"
                       "："
                       "取最差的轴的 1000 / tau。")
    eps0, ess0, _ = _efficiency_ref(torch.tensor([0.16, 4.0], dtype=F64), 0.1)
    _, ess_iso, _ = _efficiency_ref(torch.ones(2, dtype=F64), 0.1)
    return (f"在多个目标上都对（d = 1 到 4）。方差 (0.16, 4)、偏差 10% 时，ULA 只能取 eps = {eps0:.4f}，每 1000 次调用"
            "得到 "
            f"{ess0:.2f} 个有效样本；用 G = Sigma 预条件后（方差都为 1）得到 {ess_iso:.0f} 个，是 "
            f"{ess_iso / ess0:.0f} 倍。")


# -- B: the exact variants: MALA's ratio and HMC's leapfrog ----------------------------------

def _tilted_mixture() -> GaussianMixture:
    """Chapter 4.4's two tilted, overlapping components (float64)."""
    return GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.5, 0.0], [1.0, 1.0]], dtype=F64),
                           torch.tensor([[[0.5, 0.3], [0.3, 0.6]], [[1.0, -0.4], [-0.4, 0.5]]], dtype=F64))


def _two_mode_1d() -> GaussianMixture:
    return GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-2.0], [2.0]], dtype=F64),
                           torch.tensor([0.25, 0.25], dtype=F64))


def _log_q(to: torch.Tensor, frm: torch.Tensor, score_frm: torch.Tensor, eps: float, var: float) -> torch.Tensor:
    """log N(to; frm + eps s(frm), var I), summed over coordinates."""
    return torch.distributions.Normal(frm + eps * score_frm, math.sqrt(var)).log_prob(to).sum(-1)


def _mala_cases(rng=None):
    if rng is None:
        g = torch.Generator().manual_seed(44)
        targets = [(_tilted_mixture(), 0.1), (_tilted_mixture(), 0.5), (_two_mode_1d(), 0.05)]
        means3 = torch.tensor([[0.0, 1.0, -1.0], [2.0, -1.0, 0.5]], dtype=F64)
        targets.append((GaussianMixture(torch.tensor([0.4, 0.6], dtype=F64), means3,
                                        torch.tensor([0.8, 1.5], dtype=F64)), 0.2))
    else:
        g = rng
        targets = []
        for _ in range(2):
            d, K = _integer(rng, 1, 5), _integer(rng, 1, 3)
            w = torch.rand(K, generator=rng, dtype=F64) + 0.1
            targets.append((GaussianMixture(w / w.sum(), 2 * torch.randn(K, d, generator=rng, dtype=F64),
                                            0.3 + torch.rand(K, generator=rng, dtype=F64)),
                            _log_uniform(rng, 1e-3, 1.0)))
    for target, eps in targets:
        n = 48 if rng is None else _integer(rng, 17, 60)
        x = target.sample(n, generator=g).to(F64)
        z = torch.randn(x.shape, generator=g, dtype=F64)
        y = x + eps * target.score(x) + math.sqrt(2 * eps) * z       # MALA proposals from x ...
        y[:16] = x[:16] + 1.5 * torch.randn(16, x.shape[1], generator=g, dtype=F64)  # ... and some far points
        log_prob = lambda z, t=target: t.log_prob(z) + 3.7  # noqa: E731  an unnormalised log-density
        yield target, log_prob, x, y, eps


@register("4.4.B1", "MALA's log acceptance ratio", points=2.0, answers=("mala_log_accept_ratio",))
def _mala_ratio(fn, *, rng=None):
    for target, lp, x, y, eps in _mala_cases(rng):
        s = target.score
        fwd, bwd = _log_q(y, x, s(x), eps, 2 * eps), _log_q(x, y, s(y), eps, 2 * eps)
        ref = lp(y) - lp(x) + bwd - fwd
        out = as_output(call(fn, x.clone(), y.clone(), lp, s, eps, name="mala_log_accept_ratio"), ref,
                        "mala_log_accept_ratio(x, y, log_prob, score, eps)")
        if close(out, ref, 1e-8):
            continue
        d = x.shape[1]
        if close(out, lp(y) - lp(x), 1e-8):
            raise Mismatch("少了提议的修正项：Langevin 提议不对称（q(y|x) != q(x|y)，它的均值沿分数移动），"
                           "所以比值是 p(y) q(x|y) / (p(x) q(y|x))。没有它，MALA 采到的是错误的分布。")
        if close(out, lp(y) - lp(x) + fwd - bwd, 1e-8):
            raise Mismatch("提议的修正项上下颠倒了：反向移动 x <- y 在分子上，即 log q(x|y) - log q(y|x)。")
        if close(out, -ref, 1e-8):
            raise Mismatch("符号反了：log alpha = log p(y) - log p(x) + log q(x|y) - log q(y|x)（向上坡、到 p 更大处的"
                           "移动，比值应该大）。")
        if close(out, lp(y) - lp(x) + _log_q(x, y, s(y), eps, eps) - _log_q(y, x, s(x), eps, eps), 1e-8):
            raise Mismatch("提议的方差不对：y = x + eps s(x) + sqrt(2 eps) z 每个坐标的方差是 2 eps，所以 "
                           "log q(y|x) = -|y - x - eps s(x)|^2 / (4 eps) + 常数，而不是除以 (2 eps)。")
        if close(out, lp(y) - lp(x) + _log_q(x, y, s(x), eps, 2 * eps) - fwd, 1e-8):
            raise Mismatch("反向提议 q(x|y) 的中心是 y + eps s(y)：分数要在 y 处求值，而不是在 x 处。")
        if close(out, lp(y) - lp(x) + _log_q(x, y, -s(y), eps, 2 * eps) - _log_q(y, x, -s(x), eps, 2 * eps), 1e-8):
            raise Mismatch("提议的漂移符号反了：Langevin 提议沿分数移动，均值是 x + eps s(x)。")
        if close(out, ref.exp(), 1e-8) or close(out, ref.clamp_max(0).exp(), 1e-8):
            raise Mismatch("请返回比值的对数（它要和 log u 比较；直接取 exp 可能溢出）。")
        if close(out, ref.clamp_max(0), 1e-8):
            raise Mismatch("请返回对数比值本身，不要先取 min(0, .)：min 在与 log u 比较时才取，而细致平衡的检验需要"
                           "两个方向的值。")
        raise Mismatch(f"在 d = {d}、eps = {eps:g} 时你的对数比值与 float64 参考相差 {relative_error(out, ref):.2g}"
                       f"（相对误差）；第一对点上你返回 {float(out[0]):.4g}，参考值是 {float(ref[0]):.4g}。"
                       "实现要对任意维数 d 成立。")
    target, lp, x, y, eps = next(_mala_cases())
    back = as_output(call(fn, y.clone(), x.clone(), lp, target.score, eps, name="mala_log_accept_ratio"),
                     lp(x), "mala_log_accept_ratio(y, x, ...)")
    there = as_output(call(fn, x.clone(), y.clone(), lp, target.score, eps, name="mala_log_accept_ratio"),
                      lp(x), "mala_log_accept_ratio(x, y, ...)")
    antisym = float((back + there).abs().max())
    return (f"与 float64 的 Metropolis-Hastings 比值一致（d = 1、2、3），且 log r(x->y) + log r(y->x) = {antisym:.0e}："
            "细致平衡，p(x) q(y|x) min(1, r) 对 x 和 y 对称。")


def _leapfrog_ref(x, v, score, h, L, sign=1.0):
    v = v + 0.5 * h * sign * score(x)
    for i in range(L):
        x = x + h * v
        v = v + (h if i < L - 1 else 0.5 * h) * sign * score(x)
    return x, v


def _euler(x, v, score, h, L):
    for _ in range(L):
        x, v = x + h * v, v + h * score(x)
    return x, v


def _symplectic_euler_kick_first(x, v, score, h, L):
    for _ in range(L):
        v = v + h * score(x)
        x = x + h * v
    return x, v


def _symplectic_euler_drift_first(x, v, score, h, L):
    for _ in range(L):
        x = x + h * v
        v = v + h * score(x)
    return x, v


def _position_verlet(x, v, score, h, L):
    for _ in range(L):
        x = x + 0.5 * h * v
        v = v + h * score(x)
        x = x + 0.5 * h * v
    return x, v


def _pair_of_tensors(value, like, name):
    if isinstance(value, torch.Tensor) or not isinstance(value, (tuple, list)) or len(value) != 2:
        shape = f"（形状 {tuple(value.shape)}）" if isinstance(value, torch.Tensor) else ""
        raise Mismatch(f"{name} 应当返回一对张量 (x, v)，形状都是 {tuple(like.shape)}；实际返回的是 "
                       f"{type(value).__name__}{shape}。")
    return as_output(value[0], like, f"{name}[0]（x）"), as_output(value[1], like, f"{name}[1]（v）")


class _Counted:
    """A score function that counts its calls (one call = one score evaluation of the batch)."""

    def __init__(self, score):
        self.score, self.n = score, 0

    def __call__(self, x):
        self.n += 1
        return self.score(x)


def _energy(target, x, v):
    return -target.log_prob(x) + 0.5 * (v * v).sum(-1)


def _leapfrog_setups(rng):
    if rng is None:
        g = torch.Generator().manual_seed(45)
        tilted = _tilted_mixture()
        x0 = tilted.sample(32, generator=g)
        setups = [(tilted, x0, torch.randn(x0.shape, generator=g, dtype=F64), h, L)
                  for h, L in ((0.1, 15), (0.25, 4), (0.3, 1))]
        one = _two_mode_1d()
        x1 = one.sample(10, generator=g)
        setups.append((one, x1, torch.randn(x1.shape, generator=g, dtype=F64), 0.05, 6))
        three = GaussianMixture(torch.ones(1, dtype=F64), torch.zeros(1, 3, dtype=F64),
                                torch.diag(torch.tensor([0.5, 1.0, 2.0], dtype=F64))[None])
        x3 = three.sample(7, generator=g)
        setups.append((three, x3, torch.randn(x3.shape, generator=g, dtype=F64), 0.2, 5))
        return setups
    setups = []
    for _ in range(3):
        d, K = _integer(rng, 1, 5), _integer(rng, 1, 3)
        w = torch.rand(K, generator=rng, dtype=F64) + 0.1
        target = GaussianMixture(w / w.sum(), 2 * torch.randn(K, d, generator=rng, dtype=F64),
                                 0.5 + torch.rand(K, generator=rng, dtype=F64))
        x0 = target.sample(_integer(rng, 1, 40), generator=rng).to(F64)
        setups.append((target, x0, torch.randn(x0.shape, generator=rng, dtype=F64), _log_uniform(rng, 0.01, 0.3),
                       _integer(rng, 1, 20)))
    return setups


@register("4.4.B2", "leapfrog integrator of HMC", points=2.0, answers=("leapfrog",))
def _leapfrog(fn, *, rng=None):
    name = "leapfrog(x, v, score, h, L)"
    for target, x0, v0, h, L in _leapfrog_setups(rng):
        x_in, v_in = x0.clone(), v0.clone()
        xo, vo = _pair_of_tensors(call(fn, x_in, v_in, target.score, h, L, name="leapfrog"), x0, name)
        if not (torch.equal(x_in, x0) and torch.equal(v_in, v0)):
            raise Mismatch("你的蛙跳原地修改了输入张量（x += ...、v += ...）：提议被拒绝时 HMC 必须保留原来的状态。"
                           "请写成 x = x + h * v。")
        xr, vr = _leapfrog_ref(x0, v0, target.score, h, L)
        if close(xo, xr, 1e-9) and close(vo, vr, 1e-9):
            continue
        where = f"在 d = {x0.shape[1]}、h = {h:g}、L = {L} 时"
        if close(xo, vr, 1e-9) and close(vo, xr, 1e-9):
            raise Mismatch(f"{where}x 和 v 的位置对调了：请按 (x, v) 的顺序返回。")
        xs, vs = _leapfrog_ref(x0, v0, target.score, h, L, sign=-1.0)
        if close(xo, xs, 1e-9):
            raise Mismatch(f"{where}力的符号反了：U = -log p 时力是 -grad U = +score，所以每次踢是 "
                           "v <- v + (h/2) score(x)。")
        for variant, msg in ((_euler, "显式 Euler（x 和 v 都用旧状态更新）"),
                             (_symplectic_euler_kick_first, "辛 Euler（先整步踢，再整步走）"),
                             (_symplectic_euler_drift_first, "辛 Euler（先整步走，再整步踢）")):
            xe, ve = variant(x0, v0, target.score, h, L)
            if close(xo, xe, 1e-9) and close(vo, ve, 1e-9):
                raise Mismatch(f"{where}这是{msg}，一个一阶格式。蛙跳把每次踢分成两半，放在走的两边："
                               "v += (h/2) s(x); x += h v; v += (h/2) s(x)。")
        xp, vp = _position_verlet(x0, v0, target.score, h, L)
        if close(xo, xp, 1e-9) and close(vo, vp, 1e-9):
            raise Mismatch(f"{where}这是位置 Verlet（半步走、整步踢、半步走）：它也是可逆的二阶格式，但不是题目要的"
                           "「踢-走-踢」蛙跳（sample_hmc 用的那种，终点处最后一次分数会被下一次迭代重用）。")
        for L_wrong in (L - 1, L + 1):
            if L_wrong >= 1:
                xw, vw = _leapfrog_ref(x0, v0, target.score, h, L_wrong)
                if close(xo, xw, 1e-9) and close(vo, vw, 1e-9):
                    raise Mismatch(f"{where}你走了 {L_wrong} 步蛙跳，而不是 L = {L} 步。")
        if close(xo, xr, 1e-9):
            raise Mismatch(f"{where}x 对了但 v 不对：在新位置上的最后半步踢 v += (h/2) s(x_L) 漏了或者多做了一次。")
        # an unknown mistake: test the two properties HMC relies on
        xb, vb = _pair_of_tensors(call(fn, xo.clone(), -vo.clone(), target.score, h, L, name="leapfrog"), x0, name)
        if not (close(xb, x0, 1e-6) and close(-vb, v0, 1e-6)):
            raise Mismatch(f"{where}你的积分器不是时间可逆的：从终点出发、把动量取反再积分，回不到起点（相差 "
                           f"{relative_error(xb, x0):.2g}）；HMC 的 Metropolis 检验依赖这种对称性。")
        raise Mismatch(f"{where}你的终点与蛙跳相差 {relative_error(xo, xr):.2g}（x）和 {relative_error(vo, vr):.2g}（v"
                       "）"
                       "（相对误差）。它是可逆的，所以请检查步骤的顺序和大小：v += (h/2) s(x); x += h v; "
                       "v += (h/2) s(x)，共 L 次。")
    target = _tilted_mixture()
    x0 = target.sample(32, generator=torch.Generator().manual_seed(45))
    v0 = torch.randn(x0.shape, generator=torch.Generator().manual_seed(46), dtype=F64)
    counted = _Counted(target.score)
    call(fn, x0.clone(), v0.clone(), counted, 0.1, 15, name="leapfrog")
    # energy error at a fixed time T = 1.2: halving h should divide it by about 4
    errs = []
    for h, L in ((0.1, 12), (0.05, 24)):
        xo, vo = _pair_of_tensors(call(fn, x0.clone(), v0.clone(), target.score, h, L, name="leapfrog"), x0, name)
        errs.append(float((_energy(target, xo, vo) - _energy(target, x0, v0)).abs().max()))
    order = math.log2(errs[0] / errs[1]) if errs[1] > 0 else float("nan")
    tip = (f"L = 15 时你调用了 {counted.n} 次分数；缓存上一次的分数可以合并两个半步踢，L + 1 次就够了。"
           if counted.n > 16 else f"L = 15 时调用了 {counted.n} 次分数（L + 1 次，没有浪费）。")
    return (f"在 d = 1、2、3 和多组 (h, L) 上与蛙跳一致；在时刻 1.2 处，h 减半时能量误差从 {errs[0]:.1e} 降到 "
            f"{errs[1]:.1e}（阶数 {order:.1f}，二阶）。" + tip)


# -- C: a fair measure of efficiency ---------------------------------------------------------

def _ar1(T: int, N: int, a: float, g: torch.Generator) -> torch.Tensor:
    """N stationary AR(1) chains x_{t+1} = a x_t + sqrt(1 - a^2) z of length T: (T, N)."""
    z = torch.randn(T, N, generator=g, dtype=F64)
    x = torch.empty(T, N, dtype=F64)
    x[0] = z[0]
    c = math.sqrt(1 - a * a)
    for t in range(1, T):
        x[t] = a * x[t - 1] + c * z[t]
    return x


def _ess_cases(rng=None):
    if rng is None:
        g = torch.Generator().manual_seed(46)
        # a ULA-like run: one score evaluation per state, a slow and a fast coordinate
        ula = torch.stack([3.0 * _ar1(2000, 8, 0.95, g), 0.5 * _ar1(2000, 8, 0.5, g)], -1)
        yield "一个类似 ULA 的运行", ula, 2000
        # an HMC-like run: 10 evaluations per state, antithetic in x (a < 0), so x^2 is the worst statistic
        hmc = _ar1(1000, 6, -0.8, g)[:, :, None]
        yield "一个类似 HMC 的运行", hmc, 1 + 10 * 1000
        return
    for _ in range(2):
        T, N, d = _integer(rng, 300, 1500), _integer(rng, 1, 8), _integer(rng, 1, 4)
        coords = [_uniform(rng, 0.1, 3.0) * _ar1(T, N, _uniform(rng, -0.9, 0.97), rng) for _ in range(d)]
        steps = _integer(rng, 1, 20)
        yield "一个随机生成的运行", torch.stack(coords, -1), steps * T + _integer(rng, 0, 5)


@register("4.4.C1", "worst-statistic ESS per 1000 score evaluations", answers=("worst_ess_per_1000",))
def _worst_ess(fn, *, rng=None):
    for label, traj, nfe in _ess_cases(rng):
        T, N, d = traj.shape
        stats = torch.cat([traj, traj * traj], -1)
        ess = effective_sample_size(stats, monotone=False)
        ref = 1000 * float(ess.min()) / (N * nfe)
        out = as_number(call(fn, traj.clone(), nfe, name="worst_ess_per_1000"),
                        "worst_ess_per_1000(trajectory, nfe) 的返回值")
        if _near(out, ref, 1e-6):
            continue
        where = f"在{label}上（T = {T} 个状态，N = {N} 条链，d = {d}，nfe = {nfe}）"
        if _near(out, 1000 * float(effective_sample_size(traj, monotone=False).min()) / (N * nfe), 1e-6):
            raise Mismatch(f"{where}你漏掉了平方项：这条链是对偶的，x 的均值估计得非常好（ESS > T），而 x^2（也就是方"
                           "差）"
                           "混合得很慢。最差的统计量必须包括 y_i^2。")
        if _near(out, 1000 * float(effective_sample_size(stats).min()) / (N * nfe), 1e-6):
            raise Mismatch(f"{where}请用 effective_sample_size(..., monotone=False)：动力学 Langevin 不可逆，Geyer 的"
                           "单调修正并不适用于我们比较的每一种采样器。")
        if nfe != T and _near(out, 1000 * float(ess.min()) / (N * T), 1e-6):
            raise Mismatch(f"{where}你除以的是状态数 T，而不是分数调用次数：HMC 的一个状态要花 L 次调用，"
                           "我们比较的是代价。")
        if _near(out, N * ref, 1e-6):
            raise Mismatch(f"{where}要除以 N * nfe：effective_sample_size 把 N 条链加在了一起，整个运行花了 N * nfe 次"
                           "调用。")
        if _near(out, ref / 1000, 1e-6):
            raise Mismatch(f"{where}这是每次分数调用的值；还要乘以 1000。")
        if _near(out, 1000 * float(ess.mean()) / (N * nfe), 1e-6):
            raise Mismatch(f"{where}要对统计量取最小值，而不是平均：最慢的统计量决定链要跑多久。")
        raise Mismatch(f"{where}你返回 {out:.6g}，按最差统计量计的每 1000 次调用的 ESS 是 {ref:.6g}。")
    return ("在类似 ULA 和类似 HMC 的运行上都对：在对偶的链上，均值看起来效率奇高（ESS > T），x^2 才是瓶颈；"
            "HMC 的一个状态要记上它的 L 次调用。")
