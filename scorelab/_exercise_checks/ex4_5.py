"""Checks of exercise 4.5 (the unified SDE framework): parts A1-A4, B1-B3.

References: scorelab's tested SDE classes (``VPSDE``, ``SubVPSDE``, ``VESDE``, ``reverse``,
``score_to_eps`` / ``eps_to_score``, ``inverse_noise_ratio``), and for the cosine schedule of
part B, the closed form of Nichol & Dhariwal (2021) in float64 with its derivatives taken by
autograd, never the formula the student is asked to derive.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, call, register, relative_error
from .._exercise_kit import close as _close
from ..distributions import two_mode_1d
from ..sde_samplers import simulate_forward
from ..sdes import SDE, VESDE, VPSDE, SubVPSDE, eps_to_score, score_to_eps
from ..utils import make_generator

COSINE_T = 0.9946  # end time of the cosine VP SDE: alpha_bar(T) ~ 7e-5, beta(T) ~ 370


# -- shared references ------------------------------------------------------------------

def _int_beta(t: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    return beta_min * t + 0.5 * (beta_max - beta_min) * t**2


def _cos_log_alpha_bar(t: torch.Tensor, s: float) -> torch.Tensor:
    """log of Nichol & Dhariwal's alpha_bar(t) = cos^2(pi/2 (t+s)/(1+s)) / cos^2(pi/2 s/(1+s)), float64."""
    log_c0 = math.log(math.cos(0.5 * math.pi * s / (1 + s)))
    return 2 * torch.log(torch.cos(0.5 * math.pi * (t + s) / (1 + s))) - 2 * log_c0


def _derivative(fn, t: torch.Tensor) -> torch.Tensor:
    """d/dt fn(t) for an element-wise fn, by autograd (float64)."""
    t = t.detach().clone().requires_grad_(True)
    (d,) = torch.autograd.grad(fn(t).sum(), t)
    return d.detach()


def _cos_beta(t: torch.Tensor, s: float) -> torch.Tensor:
    """beta(t) = -d/dt log alpha_bar(t), by autograd of the closed form."""
    return -_derivative(lambda u: _cos_log_alpha_bar(u, s), t)


class _CosineVPReference(SDE):
    """The cosine VP SDE built from the closed form, for part B3.  Like most new SDEs it has
    no closed-form ``inverse_noise_ratio``, so a student's root finder must use alpha and sigma."""

    T = COSINE_T

    def __init__(self, s: float = 0.008):
        super().__init__()
        self.s = s

    def _beta(self, t):
        return math.pi / (1 + self.s) * torch.tan(0.5 * math.pi * (t + self.s) / (1 + self.s))

    def drift_coef(self, t):
        return -0.5 * self._beta(t)

    def diffusion_coef(self, t):
        return torch.sqrt(self._beta(t))

    def alpha(self, t):
        return torch.exp(0.5 * _cos_log_alpha_bar(t, self.s))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(_cos_log_alpha_bar(t, self.s)))

    def inverse_noise_ratio(self, r):
        raise RuntimeError("这个 SDE（和大多数新设计的 SDE 一样）没有 inverse_noise_ratio：请只用 sde.alpha(t) 和 "
                           "sde.sigma(t) 求出 t")

    def __repr__(self) -> str:
        return f"CosineVPSDE(s={self.s})"


def _pair(value, name: str):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{name} 应当返回一对张量 (alpha, sigma)，实际返回的是 {type(value).__name__}"
                       + (f"（长度 {len(value)}）" if isinstance(value, (tuple, list)) else "") + "。")
    return value


def _uniform(rng, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=F64))


def _integer(rng, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=rng))


def _times(rng, lo: float, hi: float, n: int = 41) -> torch.Tensor:
    """n times on [lo, hi], both ends included: evenly spaced, or random for the hidden variant."""
    if rng is None:
        return torch.linspace(lo, hi, n, dtype=F64)
    inner = lo + (hi - lo) * torch.rand(_integer(rng, 3, 60), generator=rng, dtype=F64)
    return torch.cat([torch.tensor([lo], dtype=F64), inner.sort().values, torch.tensor([hi], dtype=F64)])


def _betas(rng):
    if rng is None:
        return ((0.1, 20.0), (1.0, 4.0))
    return tuple((b, b + _uniform(rng, 0.5, 30.0)) for b in (_uniform(rng, 0.01, 2.0) for _ in range(2)))


def _log_or_none(v: torch.Tensor):
    return torch.log(v) if bool((v > 0).all()) else None


# -- A1: the VP marginal ------------------------------------------------------------------

@register("4.5.A1", "VP SDE marginal: alpha(t) and sigma(t)", answers=("vp_marginal",))
def _vp_marginal(fn, *, rng=None):
    t = _times(rng, 0.0, 1.0)
    mid = len(t) // 2
    for bmin, bmax in _betas(rng):
        vp = VPSDE(bmin, bmax)
        ref_a, ref_s = vp.alpha(t), vp.sigma(t)
        out = _pair(call(fn, t.clone(), bmin, bmax, name="vp_marginal"), "vp_marginal(t, beta_min, beta_max)")
        a = as_output(out[0], ref_a, "vp_marginal(...)[0]（alpha）")
        s = as_output(out[1], ref_s, "vp_marginal(...)[1]（sigma）")
        if _close(a, ref_s, 1e-6) and _close(s, ref_a, 1e-6):
            raise Mismatch("alpha 和 sigma 的位置对调了：请返回 (alpha, sigma)，信号的系数在前。")
        B = _int_beta(t, bmin, bmax)
        beta = bmin + (bmax - bmin) * t
        where = f"在 beta_min = {bmin:.4g}、beta_max = {bmax:.4g} 时"
        if not _close(a, ref_a, 1e-6):
            if _close(a, torch.exp(-B), 1e-6):
                raise Mismatch("alpha 的指数少了 1/2：exp(-B(t)) 是 alpha(t)^2，即 DDPM 的 alpha_bar。"
                               "漂移 -beta x / 2 让均值像 exp(-B/2) 那样缩小。")
            if _close(a, torch.exp(-0.5 * t * beta), 1e-6):
                raise Mismatch("你用了 B(t) = t beta(t) = beta_min t + (beta_max - beta_min) t^2，好像 beta 从 t = 0 起"
                               "一直是当前的值；t^2 项要带 1/2：B(t) = int_0^t beta = beta_min t + "
                               "(beta_max - beta_min) t^2 / 2。")
            if _close(a, torch.exp(-0.5 * beta), 1e-6):
                raise Mismatch("指数里用的是 beta(t) 本身；需要的是它的积分 B(t) = int_0^t beta(u) du。")
            inner = t > 0
            log_a = torch.log(a[inner]) if bool((a[inner] > 0).all()) else None
            if log_a is not None:
                e, ti = -2 * log_a, t[inner]  # the student's B(t); linear in t if they integrated beta as a constant
                c = float((e * ti).sum() / (ti * ti).sum())
                if relative_error(e, c * ti) < 1e-6 and relative_error(e, B[inner]) > 1e-3:
                    raise Mismatch(f"你的指数对 t 是线性的（B(t) = {c:.4g} t）：beta(t) 不是常数，而是从 beta_min 线性"
                                   "增长到 beta_max，所以它的积分 B(t) 是 t 的二次函数。")
            bad = ~torch.isfinite(a)
            if bool(bad.any()):
                raise Mismatch(f"{where}你的 alpha 在 t = {float(t[bad][0]):.4g} 处是 NaN 或 inf；"
                               "题目要求 t 取遍 [0, 1]，包括两个端点。")
            raise Mismatch(f"{where}你的 alpha 与 VPSDE 相差 {relative_error(a, ref_a):.2g}（相对误差）；在 "
                           f"t = {float(t[mid]):.4g} 处你返回 {float(a[mid]):.5g}，alpha 是 {float(ref_a[mid]):.5g}。")
        if not _close(s, ref_s, 1e-6):
            if _close(s, ref_s**2, 1e-6):
                raise Mismatch("你的 sigma 是方差 1 - alpha^2；标准差是它的平方根。（1 - alpha^2 恰好是 sub-VP SDE 的"
                               "标准差，见 A2。）")
            if _close(s, torch.sqrt(1 - ref_a), 1e-6):
                raise Mismatch("sigma^2 = 1 - alpha^2，不是 1 - alpha：单位方差数据的 alpha x0 + sigma eps 的方差是 "
                               "alpha^2 + sigma^2，VP 让它保持为 1。")
            bad = ~torch.isfinite(s)
            if bool(bad.any()):
                raise Mismatch(f"{where}你的 sigma 在 t = {float(t[bad][0]):.4g} 处是 NaN 或 inf；"
                               "题目要求 t 取遍 [0, 1]，包括 t = 0（那里 sigma = 0）。")
            raise Mismatch(f"{where}alpha 对了，sigma 相差 {relative_error(s, ref_s):.2g}（相对误差）："
                           "对单位方差的数据，VP 保持 alpha^2 + sigma^2 = 1。")
    t1 = torch.tensor([1.0], dtype=F64)
    return (f"与 VPSDE 在两组调度、t 从 0 到 1（含端点）上一致；DDPM 的 (0.1, 20) 在 t = 1 时只剩 "
            f"alpha(1) = {float(VPSDE().alpha(t1)):.4f} 的信号，并且每个 t 上都有 alpha^2 + sigma^2 = 1。")


# -- A2: the sub-VP standard deviation --------------------------------------------------

@register("4.5.A2", "sub-VP SDE: noise standard deviation", answers=("subvp_sigma",))
def _subvp_sigma(fn, *, rng=None):
    t = _times(rng, 0.0, 1.0)
    for bmin, bmax in _betas(rng):
        ref = SubVPSDE(bmin, bmax).sigma(t)
        out = as_output(call(fn, t.clone(), bmin, bmax, name="subvp_sigma"), ref, "subvp_sigma(t, beta_min, beta_max)")
        if _close(out, ref, 1e-6):
            continue
        B = _int_beta(t, bmin, bmax)
        if _close(out, VPSDE(bmin, bmax).sigma(t), 1e-6):
            raise Mismatch("这是 VP SDE 的标准差 sqrt(1 - exp(-B))。sub-VP 的扩散更小，g^2 = beta (1 - exp(-2B))；"
                           "请解方差方程 dV/dt = -beta V + g^2，V(0) = 0。")
        if _close(out, ref**2, 1e-6):
            raise Mismatch("你返回的是方差 (1 - exp(-B))^2；标准差是 1 - exp(-B)。")
        if _close(out, -torch.expm1(-2 * B), 1e-6) or _close(out, torch.sqrt(-torch.expm1(-2 * B)), 1e-6):
            raise Mismatch("g^2 里的 exp(-2B) 并不是答案的指数：取 V = (1 - exp(-B))^2，则 dV/dt = 2 beta exp(-B) "
                           "(1 - exp(-B))，而 -beta V + g^2 = beta (1 - exp(-B)) (-(1 - exp(-B)) + 1 + exp(-B))，"
                           "两者相等，所以 sigma = 1 - exp(-B)。")
        if _close(out, -torch.expm1(-0.5 * B), 1e-6):
            raise Mismatch("不是 1 - alpha：sigma = 1 - alpha^2 = 1 - exp(-B)，其中 alpha = exp(-B/2)。")
        bad = ~torch.isfinite(out)
        if bool(bad.any()):
            raise Mismatch(f"你的 sigma 在 t = {float(t[bad][0]):.4g} 处是 NaN 或 inf；题目要求 t 取遍 [0, 1]。")
        raise Mismatch(f"在 beta_min = {bmin:.4g}、beta_max = {bmax:.4g} 时你的 sigma 与 SubVPSDE 相差 "
                       f"{relative_error(out, ref):.2g}（相对误差）。请解 dV/dt = 2 f V + g^2，f = -beta/2，"
                       "g^2 = beta (1 - exp(-2B))，V(0) = 0。")
    tm = torch.tensor([0.1], dtype=F64)
    sub, vp = float(SubVPSDE().sigma(tm)), float(VPSDE().sigma(tm))
    return (f"与 SubVPSDE 一致：sigma_sub = 1 - alpha^2 = sigma_VP^2 < sigma_VP，例如 t = 0.1 时是 {sub:.3f}，VP 是 "
            f"{vp:.3f}；只有在 sigma -> 1 的大 t 处两者才重合。")


# -- A3: reverse SDE and probability-flow ODE --------------------------------------------

def _drift_cases(rng):
    """(x, t, score) batches: n != d, so that an (N,) coefficient multiplied with (N, d) fails loudly;
    d = 1, 3 and 5, and times from the boundary t_eps = 1e-3 to T = 1."""
    if rng is None:
        g, plan = torch.Generator().manual_seed(453), ((7, 3), (4, 1), (6, 5))
    else:
        g, plan = rng, tuple((_integer(rng, 1, 40), _integer(rng, 1, 6)) for _ in range(2))
    for n, d in plan:
        x = 2 * torch.randn(n, d, generator=g, dtype=F64)
        t = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=F64)
        t[0] = 1e-3
        if n > 1:
            t[-1] = 1.0
        yield x, t, torch.randn(n, d, generator=g, dtype=F64)


def _call_drift(fn, name, x, t, score, sde, ref):
    x_in, t_in, s_in = x.clone(), t.clone(), score.clone()
    out = as_output(call(fn, x_in, t_in, s_in, sde, name=name), ref, f"{name}(x, t, score, sde)")
    if not (torch.equal(x_in, x) and torch.equal(t_in, t) and torch.equal(s_in, score)):
        raise Mismatch(f"{name} 原地修改了某个输入（例如 x *= ... 或 score.mul_(...)）：请计算一个新的张量，"
                       "采样器在算完漂移之后还要用 x。")
    return out


def _sdes(rng):
    if rng is None:
        return (VPSDE(), SubVPSDE(), VESDE())
    bmin = _uniform(rng, 0.01, 2.0)
    smin = _uniform(rng, 0.001, 0.1)
    return (VPSDE(bmin, bmin + _uniform(rng, 1.0, 30.0)), SubVPSDE(bmin, bmin + _uniform(rng, 1.0, 30.0)),
            VESDE(smin, smin * _uniform(rng, 10.0, 5000.0)))


@register("4.5.A3", "reverse-SDE and probability-flow ODE drifts", points=2.0, answers=("reverse_drift", "ode_drift"))
def _drifts(reverse_drift, ode_drift, *, rng=None):
    cases, sdes = list(_drift_cases(rng)), _sdes(rng)
    for x, t, score in cases:  # the reverse SDE first, on all three SDEs
        for sde in sdes:
            ref = sde.reverse(lambda y, tt, score=score: score).sde(x, t)[0]
            f = sde.drift_coef(t)[:, None] * x
            gg = sde.diffusion_coef(t)[:, None]
            out = _call_drift(reverse_drift, "reverse_drift", x, t, score, sde, ref)
            if _close(out, ref, 1e-6):
                continue
            if _close(out, f + gg**2 * score, 1e-6):
                raise Mismatch("分数项的符号反了：反向漂移是 f - g^2 s。时间倒着走（dt < 0），所以 -g^2 s dt = "
                               "+g^2 |dt| s 把 x 推向密度更高处。")
            if _close(out, -ref, 1e-6):
                raise Mismatch("你把整个漂移取了负号，那是反向时钟 tau = T - t 下的速度。这里和 sde.reverse、采样器一"
                               "样，"
                               "t 本身从 T 走到 0，dt < 0，漂移是 f(x, t) - g(t)^2 s。")
            if _close(out, f - 0.5 * gg**2 * score, 1e-6):
                raise Mismatch("这是概率流 ODE 的漂移：反向 SDE 带完整的 g^2 s；1/2 属于没有噪声分担工作的 ODE。")
            if _close(out, f - score, 1e-6):
                raise Mismatch(f"分数前面少了因子 g(t)^2（{type(sde).__name__}）。")
            if _close(out, f - gg * score, 1e-6):
                raise Mismatch("分数乘的是 g(t)；需要的是 g(t)^2（扩散系数的平方）。")
            if sde.drift_coef(t).abs().max() > 0 and _close(out, -gg**2 * score, 1e-6):
                raise Mismatch(f"少了前向漂移 f(x, t) = f(t) x：对 {type(sde).__name__}，f(t) = -beta(t)/2，"
                               "反向漂移是 f(x, t) - g^2 s。")
            if _close(out, -f - gg**2 * score, 1e-6):
                raise Mismatch("f 的符号反了：反向漂移保留前向漂移 f(x, t) 本身，再减去 g^2 s。")
            raise Mismatch(f"对 {sde!r}、形状 {tuple(x.shape)} 的 x，你的反向漂移与 sde.reverse(score).sde(x, t) 相差 "
                           f"{relative_error(out, ref):.2g}（相对误差）。漂移是 f(t) x - g(t)^2 s，(N,) 的系数要广播到 "
                           "d 个坐标上。")
    for x, t, score in cases:
        for sde in sdes:
            ref = sde.reverse(lambda y, tt, score=score: score, probability_flow=True).sde(x, t)[0]
            f = sde.drift_coef(t)[:, None] * x
            gg = sde.diffusion_coef(t)[:, None]
            out = _call_drift(ode_drift, "ode_drift", x, t, score, sde, ref)
            if _close(out, ref, 1e-6):
                continue
            if _close(out, f - gg**2 * score, 1e-6):
                raise Mismatch("少了 1/2：概率流 ODE 的漂移是 f - g^2 s / 2。没有噪声时，分数项的一半是 SDE 里扩散"
                               "所做的事（Fokker-Planck：g^2/2 Laplacian p = div(g^2/2 p grad log p)）。")
            if _close(out, f + 0.5 * gg**2 * score, 1e-6):
                raise Mismatch("分数项的符号反了：ODE 的漂移是 f - g^2 s / 2。")
            if _close(out, -ref, 1e-6):
                raise Mismatch("你把整个漂移取了负号（那是 tau = T - t 下的速度）；请以 t 为时钟："
                               "dx/dt = f(x, t) - g(t)^2 s / 2，从 T 积分到 0。")
            if _close(out, f - 0.5 * score, 1e-6) or _close(out, f - 0.5 * gg * score, 1e-6):
                raise Mismatch("分数项前面要乘 g(t)^2 / 2。")
            if sde.drift_coef(t).abs().max() > 0 and _close(out, -0.5 * gg**2 * score, 1e-6):
                raise Mismatch(f"ODE 里少了前向漂移 f(t) x（对 {type(sde).__name__} 它不为零）。")
            raise Mismatch(f"对 {sde!r}、形状 {tuple(x.shape)} 的 x，你的 ODE 漂移与 "
                           "sde.reverse(score, probability_flow=True).sde(x, t) 相差 "
                           f"{relative_error(out, ref):.2g}（相对误差）。")
    return ("两个漂移在 VP、sub-VP 和 VE 上、d = 1、3、5 时都与 sde.reverse 一致：同一个分数，在 SDE 里权重是 g^2，"
            "在与它有相同边缘分布的确定性 ODE 里是 g^2/2。")


# -- A4: noise prediction and score -----------------------------------------------------

@register("4.5.A4", "noise prediction and score", answers=("eps_from_score", "score_from_eps"))
def _eps_score(eps_from_score, score_from_eps, *, rng=None):
    if rng is None:
        g, shapes = torch.Generator().manual_seed(454), ((6, 2), (5, 3, 7), (6, 1, 4, 4), (3, 2, 2, 2, 2), (4, 1))
    else:
        g = rng
        shapes = tuple((_integer(rng, 1, 9), *(_integer(rng, 1, 5) for _ in range(_integer(rng, 1, 4))))
                       for _ in range(3))
    for shape in shapes:
        score = torch.randn(shape, generator=g, dtype=F64)
        eps = torch.randn(shape, generator=g, dtype=F64)
        sigma = 0.05 + 2 * torch.rand(shape[0], generator=g, dtype=F64)
        sb = sigma.reshape((-1,) + (1,) * (len(shape) - 1))
        ref = score_to_eps(score, sigma)
        out = as_output(call(eps_from_score, score.clone(), sigma.clone(), name="eps_from_score"), ref,
                        "eps_from_score(score, sigma)")
        if not _close(out, ref, 1e-10):
            if _close(out, -ref, 1e-10):
                raise Mismatch("符号反了：给定 x0 时 x_t = alpha x0 + sigma eps 的分数是 -eps/sigma，所以 eps = -sigma"
                               " s"
                               "（噪声背离数据，分数指向数据）。")
            if _close(out, -score / sb, 1e-10):
                raise Mismatch("你除以了 sigma：s = -eps / sigma，所以 eps = -sigma s（要乘）。")
            if _close(out, -sb**2 * score, 1e-10):
                raise Mismatch("-sigma^2 s 是 Tweedie 的一步（x + sigma^2 s 是去噪后的 alpha x0），不是噪声；eps = -si"
                               "gma s。")
            raise Mismatch(f"对形状 {shape} 的一批张量，你的 eps 与 scorelab.sdes.score_to_eps 相差 "
                           f"{relative_error(out, ref):.2g}（相对误差）；要把 (N,) 的 sigma 广播到其余各维"
                           "（scorelab.sdes.append_dims），对任意维数的 (N, ...) 都成立。")
        ref = eps_to_score(eps, sigma)
        out = as_output(call(score_from_eps, eps.clone(), sigma.clone(), name="score_from_eps"), ref,
                        "score_from_eps(eps, sigma)")
        if not _close(out, ref, 1e-10):
            if _close(out, -ref, 1e-10):
                raise Mismatch("符号反了：s = -eps / sigma。")
            if _close(out, -eps * sb, 1e-10):
                raise Mismatch("你乘了 sigma：eps = -sigma s 的逆是 s = -eps / sigma。")
            if _close(out, -eps / sb**2, 1e-10):
                raise Mismatch("多除了一个 sigma：s = -eps / sigma（eps 的方差为 1，分数的量级是 1/sigma）。")
            raise Mismatch(f"对形状 {shape} 的一批张量，你的分数与 scorelab.sdes.eps_to_score 相差 "
                           f"{relative_error(out, ref):.2g}（相对误差）。")
    return ("eps = -sigma s，s = -eps / sigma，对点和各种形状的图像都成立：DDPM 的噪声预测器就是缩放过的分数，"
            "两种损失只差权重 sigma^2。")


# -- B1: the cosine schedule ------------------------------------------------------------

def _cosine_s(rng):
    return (0.008, 0.05) if rng is None else tuple(math.exp(_uniform(rng, math.log(1e-3), math.log(0.2)))
                                                  for _ in range(2))


@register("4.5.B1", "cosine schedule: log alpha_bar and beta", answers=("cosine_log_alpha_bar", "cosine_beta"))
def _cosine_schedule(log_alpha_bar_fn, beta_fn, *, rng=None):
    t = _times(rng, 0.0, COSINE_T, 45)
    mid = len(t) // 2
    for s in _cosine_s(rng):
        ref = _cos_log_alpha_bar(t, s)
        out = as_output(call(log_alpha_bar_fn, t.clone(), s, name="cosine_log_alpha_bar"), ref,
                        "cosine_log_alpha_bar(t, s)")
        if not _close(out, ref, 1e-8):
            c0 = math.cos(0.5 * math.pi * s / (1 + s))
            if _close(out, ref.exp(), 1e-8):
                raise Mismatch("你返回的是 alpha_bar 本身；函数应返回它的对数（beta 对 log alpha_bar 求导，"
                               "而且在 t = T 附近对数形式更准）。")
            if _close(out, ref + 2 * math.log(c0), 1e-8):
                raise Mismatch(f"alpha_bar(0) 应当等于 1：要除以 cos^2(pi/2 s/(1+s)) = {c0**2:.6f}"
                               f"（s = {s:.4g} 时），也就是减去它的对数。")
            if _close(out, 0.5 * ref, 1e-8) or _close(out, 0.5 * (ref + 2 * math.log(c0)), 1e-8):
                raise Mismatch("alpha_bar 里是 cos 的平方：log alpha_bar = 2 log cos(...) - 2 log cos(...)。")
            bad = ~torch.isfinite(out)
            if bool(bad.any()):
                raise Mismatch(f"你的 log alpha_bar 在 t = {float(t[bad][0]):.4g} 处是 NaN 或 inf：题目要求 t 取遍 "
                               f"[0, T]，T = {COSINE_T}。")
            raise Mismatch(f"s = {s:.4g} 时你的 log alpha_bar 与闭式相差 {relative_error(out, ref):.2g}（相对误差）；"
                           f"t = 0 处应为 0（你返回 {float(out[0]):.4g}），t = {float(t[mid]):.4g} 处应为 "
                           f"{float(ref[mid]):.5g}（你返回 {float(out[mid]):.5g}）。")
        ref_b = _cos_beta(t, s)
        out = as_output(call(beta_fn, t.clone(), s, name="cosine_beta"), ref_b, "cosine_beta(t, s)")
        if _close(out, ref_b, 1e-6):
            continue
        if _close(out, -ref_b, 1e-6):
            raise Mismatch("符号反了：alpha_bar 递减，所以 beta = -d/dt log alpha_bar 是正的。")
        if _close(out, ref_b * ref.exp(), 1e-6):
            raise Mismatch("这是 -d/dt alpha_bar；beta 是相对衰减率 -d/dt log alpha_bar（= -alpha_bar' / alpha_bar），"
                           "即 DDPM 中 1 - alpha_bar_i / alpha_bar_{i-1} 的连续版本。")
        if _close(out, 0.5 * ref_b, 1e-6):
            raise Mismatch("只有 beta 的一半：是不是对 log alpha = log alpha_bar / 2 求了导，或者对 log cos 而不是 "
                           "log cos^2 求导？")
        if _close(out, 2 * ref_b, 1e-6):
            raise Mismatch("是 beta 的两倍：beta = -d/dt log alpha_bar，没有额外的因子 2（1/2 出现在 f = -beta/2 里）"
                           "。")
        if _close(out, ref_b * 2 * (1 + s) / math.pi, 1e-6):
            raise Mismatch("少了内层函数的链式法则因子：d/dt [pi/2 (t+s)/(1+s)] = pi / (2 (1+s))。")
        bad = ~torch.isfinite(out)
        if bool(bad.any()):
            raise Mismatch(f"你的 beta 在 t = {float(t[bad][0]):.4g} 处是 NaN 或 inf：题目要求 t 取遍 [0, T]。")
        raise Mismatch(f"s = {s:.4g} 时你的 beta 与 -d/dt log alpha_bar（闭式的自动微分）相差 "
                       f"{relative_error(out, ref_b):.2g}（相对误差）；t = {float(t[mid]):.4g} 处你返回 "
                       f"{float(out[mid]):.5g}，beta 是 {float(ref_b[mid]):.5g}。")
    tt = torch.tensor([0.0, 0.5, COSINE_T], dtype=F64)
    b = _cos_beta(tt, 0.008)
    return (f"与闭式及其自动微分一致（t 取遍 [0, T]）：beta 在 t = 0 处是 {float(b[0]):.3f}，t = 0.5 处 "
            f"{float(b[1]):.2f}，T = {COSINE_T} 处 {float(b[2]):.0f}（t = 1 处为无穷大，所以 T < 1）。")


# -- B2: the cosine VP SDE as an SDE class -----------------------------------------------

def _method(sde, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    method = getattr(sde, name, None)
    if method is None:
        raise Mismatch(f"CosineVPSDE 没有方法 {name}：请在类里定义 def {name}(self, t)。")
    return as_output(call(method, t.clone(), name=f"CosineVPSDE.{name}"), like, f"CosineVPSDE.{name}(t)")


def _first_bad(values: torch.Tensor, t: torch.Tensor) -> str:
    bad = ~torch.isfinite(values)
    return f"{float(t[bad][0]):.4g}" if bool(bad.any()) else ""


@register("4.5.B2", "a new SDE class: the cosine VP SDE", points=2.0, answers=("CosineVPSDE",))
def _cosine_sde(cls, *, rng=None):
    t = _times(rng, 0.0, COSINE_T, 45)  # the whole range, t = 0 (where the samplers start) and T included
    for s in _cosine_s(rng):
        sde = call(cls, s=s, name="CosineVPSDE")
        if not isinstance(sde, SDE):
            raise Mismatch(f"CosineVPSDE(s={s:.4g}) 应当是 scorelab.sdes.SDE 的实例（class CosineVPSDE(SDE): ...），"
                           f"实际是 {type(sde).__name__}；只有这样 scorelab 的采样器才能接受它。")
        T = as_number(getattr(sde, "T", None), "CosineVPSDE.T")
        if not 0.9 < T < 1.0:
            raise Mismatch(f"T = {T}：请保持 T = {COSINE_T} < 1；alpha_bar(1) = 0 且 beta(1) 为无穷大，"
                           "这个 SDE 不能跑到 t = 1。")
        log_ab = _cos_log_alpha_bar(t, s)
        ref_a = torch.exp(0.5 * log_ab)
        ref_s = torch.sqrt(-torch.expm1(log_ab))
        ref_f = _derivative(lambda u, s=s: 0.5 * _cos_log_alpha_bar(u, s), t)  # f = d/dt log alpha
        ref_v = -torch.expm1(log_ab)  # V = sigma^2
        dv = _derivative(lambda u, s=s: -torch.expm1(_cos_log_alpha_bar(u, s)), t)
        ref_g = torch.sqrt(dv - 2 * ref_f * ref_v)  # g^2 = dV/dt - 2 f V
        mid = len(t) // 2
        a = _method(sde, "alpha", t, ref_a)
        if not _close(a, ref_a, 1e-8):
            if _close(a, ref_a**2, 1e-8):
                raise Mismatch("alpha 返回的是 alpha_bar：均值系数是 alpha(t) = sqrt(alpha_bar(t))；alpha_bar 是信号在"
                               "方差中所占的比例。")
            if _first_bad(a, t):
                raise Mismatch(f"alpha 在 t = {_first_bad(a, t)} 处是 NaN 或 inf：它要对 [0, T] 上的每个 t 成立。")
            raise Mismatch(f"s = {s:.4g} 时 alpha 与 sqrt(alpha_bar) 相差 {relative_error(a, ref_a):.2g}（相对误差）；"
                           f"t = {float(t[mid]):.3f} 处你返回 {float(a[mid]):.5g}，alpha 是 {float(ref_a[mid]):.5g}。")
        # sigma(0) = 0 exactly, where sqrt(-expm1(log alpha_bar)) may round to sqrt(-1e-17): compare just after 0
        ts = torch.where(t == 0, torch.full_like(t, 1e-9), t)
        ref_s = torch.sqrt(-torch.expm1(_cos_log_alpha_bar(ts, s)))
        sg = _method(sde, "sigma", ts, ref_s)
        if not _close(sg, ref_s, 1e-8):
            if _close(sg, ref_s**2, 1e-6):
                raise Mismatch("sigma 返回的是方差 1 - alpha_bar；标准差是 sqrt(1 - alpha_bar)。")
            if _close(sg, torch.sqrt(1 - torch.exp(0.5 * _cos_log_alpha_bar(ts, s))), 1e-8):
                raise Mismatch("sigma^2 = 1 - alpha^2 = 1 - alpha_bar，而不是 1 - alpha。")
            if _first_bad(sg, ts):
                raise Mismatch(f"sigma 在 t = {_first_bad(sg, ts)} 处是 NaN 或 inf：它要对 (0, T] 上的每个 t 成立"
                               "（t 趋于 0 时 sigma 趋于 0）。")
            raise Mismatch(f"s = {s:.4g} 时 sigma 与 sqrt(1 - alpha_bar) 相差 {relative_error(sg, ref_s):.2g}"
                           "（相对误差）；VP SDE 保持 alpha^2 + sigma^2 = 1。")
        f = _method(sde, "drift_coef", t, ref_f)
        if not _close(f, ref_f, 1e-6):
            if _close(f, 2 * ref_f, 1e-6):
                raise Mismatch("drift_coef 是 -beta，少了 1/2：f = -beta 时均值像 alpha_bar = alpha^2 那样缩小，"
                               "而不是 alpha。线性 SDE 的 f(t) = d/dt log alpha(t) = -beta/2。")
            if _close(f, -ref_f, 1e-6):
                raise Mismatch("drift_coef 的符号反了：f(t) = -beta(t)/2 < 0，把 x 拉向 0。")
            if _first_bad(f, t):
                raise Mismatch(f"drift_coef 在 t = {_first_bad(f, t)} 处是 NaN 或 inf：采样器和 simulate_forward 会"
                               "用到 [0, T] 上的每个时刻，包括 t = 0。")
            raise Mismatch(f"drift_coef 与 d/dt log alpha(t)（自动微分）相差 {relative_error(f, ref_f):.2g}"
                           "（相对误差）；线性 SDE 的均值满足 d/dt alpha = f alpha。")
        gg = _method(sde, "diffusion_coef", t, ref_g)
        if not _close(gg, ref_g, 1e-6):
            if _close(gg, ref_g**2, 1e-6):
                raise Mismatch("diffusion_coef 返回的是 beta；g(t) 是它的平方根：dt 内加入的噪声方差是 g^2 dt = beta d"
                               "t。")
            inner = t > 0  # the sub-VP diffusion vanishes at t = 0, where rounding decides its sign
            if _close(gg[inner], torch.sqrt(ref_g**2 * -torch.expm1(2 * log_ab))[inner], 1e-6):
                raise Mismatch("这是 sub-VP 的扩散 sqrt(beta (1 - alpha_bar^2))；用它时标准差会是 1 - alpha_bar，"
                               "而不是你的 sigma = sqrt(1 - alpha_bar)。")
            if _first_bad(gg, t):
                raise Mismatch(f"diffusion_coef 在 t = {_first_bad(gg, t)} 处是 NaN 或 inf：采样器和 simulate_forward "
                               "会用到 [0, T] 上的每个时刻，包括 t = 0。")
            raise Mismatch(f"diffusion_coef 与 sqrt(dV/dt - 2 f V)（V = sigma^2，自动微分）相差 "
                           f"{relative_error(gg, ref_g):.2g}（相对误差）：g 加入的方差必须恰好补上 f 消去的部分。")
    # the class plugs into scorelab: Euler--Maruyama on it reaches the marginal it claims
    sde = call(cls, name="CosineVPSDE")
    x0 = two_mode_1d().sample(20_000, generator=make_generator(455)).double()
    t_end, n = 0.6, x0.shape[0]
    xt = call(simulate_forward, x0, sde, n_steps=400, t_end=t_end, generator=make_generator(456),
              name="simulate_forward")
    xt = as_output(xt, x0, "simulate_forward(x0, CosineVPSDE(), ...)")
    te = torch.tensor([t_end], dtype=F64)
    log_ab_end = _cos_log_alpha_bar(te, 0.008)
    a, sg = float(torch.exp(0.5 * log_ab_end)), float(torch.sqrt(-torch.expm1(log_ab_end)))
    m_ref, v_ref = a * float(x0.mean()), a * a * float(x0.var()) + sg * sg
    m_emp, v_emp = float(xt.mean()), float(xt.var())
    # 5 standard errors of 20,000 particles, plus 1% for the Euler bias of 400 steps (NaN fails both)
    mean_ok = abs(m_emp - m_ref) <= 5 * sg / math.sqrt(n) + 0.01 * abs(m_ref)
    var_ok = abs(v_emp / v_ref - 1) <= 5 * math.sqrt(2 / n) + 0.01
    if not (mean_ok and var_ok):
        raise Mismatch(f"每个系数都对，但 simulate_forward(x0, CosineVPSDE(), t_end = {t_end}) 给出的均值是 "
                       f"{m_emp:.3f}、"
                       f"方差是 {v_emp:.3f}，而 alpha 和 sigma 预言的是 {m_ref:.3f} 和 {v_ref:.3f}："
                       "你的方法对任意 (N,) 的时间张量都成立吗？")
    vp = VPSDE()
    return (f"一个能用的 SDE：simulate_forward 到 t = {t_end} 得到方差 {v_emp:.3f}（闭式 {v_ref:.3f}）；t = {t_end} 时"
            f"余弦调度保留了 alpha^2 = {a * a:.3f} 的信号，线性 VP 只剩 {float(vp.alpha(te)) ** 2:.3f}。")


# -- B3: when does the SNR cross a level? -----------------------------------------------

def _snr_cases(rng):
    if rng is None:
        return (VPSDE(), SubVPSDE(), VESDE(), _CosineVPReference()), (100.0, 1.0, 0.01)
    bmin = _uniform(rng, 0.05, 1.0)
    levels = tuple(math.exp(_uniform(rng, math.log(2e-3), math.log(500.0))) for _ in range(3))
    return (VPSDE(bmin, bmin + _uniform(rng, 16.0, 25.0)), SubVPSDE(), VESDE(0.01, _uniform(rng, 40.0, 80.0)),
            _CosineVPReference(_uniform(rng, 0.002, 0.02))), levels


@register("4.5.B3", "time at which the SNR crosses a level", answers=("snr_time",))
def _snr_time(fn, *, rng=None):
    sdes, levels = _snr_cases(rng)
    for sde in sdes:
        for snr in levels:
            if isinstance(sde, _CosineVPReference):
                ab = snr / (1 + snr)  # alpha_bar / (1 - alpha_bar) = snr
                s = sde.s
                ref = (1 + s) * 2 / math.pi * math.acos(math.sqrt(ab) * math.cos(0.5 * math.pi * s / (1 + s))) - s
                inv = None
            else:
                def inv(r, sde=sde):
                    return float(sde.inverse_noise_ratio(torch.tensor([r], dtype=F64)))
                ref = inv(snr**-0.5)
            v = as_number(call(fn, sde, snr, name="snr_time"), "snr_time(sde, snr) 的返回值")
            if abs(v - ref) < 1e-4:
                continue
            if inv is not None and snr != 1.0:
                if abs(v - inv(snr)) < 1e-4:
                    raise Mismatch("你解的是 sigma/alpha = snr：那是噪声比 r；信噪比是 alpha^2 / sigma^2 = 1 / r^2。")
                if abs(v - inv(1 / snr)) < 1e-4:
                    raise Mismatch("你解的是 alpha/sigma = snr；信噪比是方差之比 alpha^2 / sigma^2。")
                if abs(v - inv(snr**0.5)) < 1e-4:
                    raise Mismatch("你解的是 sigma^2/alpha^2 = snr，那是 1/SNR；信噪比是 alpha^2 / sigma^2。")
            if min(abs(v), abs(v - sde.T)) < 1e-3:
                raise Mismatch(f"对 {sde!r}、snr = {snr:g}，你返回 t = {v:.4g}，那是 [0, T] 的端点；答案在区间内部。"
                               "SNR 随 t 递减（t = 0 处为无穷大）：如果 SNR(mid) > snr，交点在 mid 的右边。")
            tt = torch.tensor([min(max(v, 1e-9), sde.T)], dtype=F64)
            got = float(sde.alpha(tt) ** 2 / sde.sigma(tt) ** 2)
            raise Mismatch(f"对 {sde!r}：在你给的 t = {v:.5g} 处，SNR alpha^2/sigma^2 是 {got:.4g}，不是 {snr:g}"
                           f"（交点在 t = {ref:.4f}）；在 log SNR 上二分到 1e-8 就够了。")
    ts = {"VP": VPSDE().inverse_noise_ratio(torch.ones(1, dtype=F64)),
          "VE": VESDE().inverse_noise_ratio(torch.ones(1, dtype=F64))}
    s = 0.008
    t_cos = (1 + s) * 2 / math.pi * math.acos(math.sqrt(0.5) * math.cos(0.5 * math.pi * s / (1 + s))) - s
    return (f"对 VP、sub-VP、VE 和余弦 SDE，在 SNR 为 100、1、0.01 时都对；SNR = 1 出现在 t = {float(ts['VP']):.3f}"
            f"（VP）、{float(ts['VE']):.3f}（VE）和 {t_cos:.3f}（余弦）：余弦调度让信号占上风的时间差不多是线性 VP 的"
            "两倍。")
