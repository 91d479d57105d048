"""Checks of exercise 4.1 (properties of the score): parts A1, A2, B1, B2, B3."""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, autograd_score, call, close, register, relative_error
from ..distributions import GaussianMixture, two_mode_1d


def _uniform(rng: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=F64))


def _log_uniform(rng: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(_uniform(rng, math.log(lo), math.log(hi)))


def _integer(rng: torch.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (), generator=rng))


# -- A1 ------------------------------------------------------------------------------------------

def _gamma_cases(rng):
    if rng is None:
        # small, moderate and large x, and a shape k < 1 whose density falls from x = 0
        x = torch.cat([torch.logspace(-3, -1, 10, dtype=F64), torch.linspace(0.1, 8.0, 40, dtype=F64),
                       torch.tensor([20.0, 50.0, 400.0, 1000.0], dtype=F64)])[:, None]
        return [(k, theta, x) for k, theta in ((2.0, 1.0), (3.5, 0.5), (0.7, 2.0))]
    cases = []
    for _ in range(4):
        n = _integer(rng, 5, 60)
        u = torch.rand(n, 1, generator=rng, dtype=F64)
        x = torch.exp(math.log(1e-3) + (math.log(2000.0) - math.log(1e-3)) * u)
        cases.append((_uniform(rng, 0.2, 6.0), _log_uniform(rng, 0.1, 4.0), x))
    return cases


@register("4.1.A1", "score of the Gamma distribution (exponential family)", answers=("gamma_score",))
def _gamma_score(fn, *, rng=None):
    for k, theta, x in _gamma_cases(rng):
        dist = torch.distributions.Gamma(torch.tensor(k, dtype=F64), torch.tensor(1.0 / theta, dtype=F64))
        ref = autograd_score(lambda z, dist=dist: dist.log_prob(z[:, 0]), x)
        out = as_output(call(fn, x.clone(), k, theta, name="gamma_score"), ref, "gamma_score(x, k, theta)")
        if close(out, ref, 1e-5):
            continue
        where = f"在 k = {k:.4g}、theta = {theta:.4g} 时"
        if close(out, -ref, 1e-5):
            raise Mismatch(f"{where}符号反了：分数是 +d/dx log p(x)。x 很小时（k > 1）密度随 x 上升，分数应为正。")
        if close(out, k / x - 1 / theta, 1e-5):
            raise Mismatch(f"{where}第一项应为 (k - 1)/x：写成自然形式时 h(x) = 1，T(x) = (log x, x)，"
                           "eta = (k - 1, -1/theta)，所以分数是 eta_1/x + eta_2。")
        if close(out, (k - 1) / x - theta, 1e-5):
            raise Mismatch(f"{where}常数项不对：theta 是尺度（scale），指数里乘在 x 前面的速率（rate）是 1/theta，"
                           "所以分数的常数项是 -1/theta，而不是 -theta。")
        bad = ~torch.isfinite(out)
        if bool(bad.any()):
            first = float(x[bad][0])
            raise Mismatch(f"{where}你的分数在 {int(bad.sum())} 个点上是 NaN 或 inf（例如 x = {first:.3g}）："
                           "题目要求对所有 x > 0 成立。")
        i = int((out - ref).abs().argmax())
        raise Mismatch(f"{where}你的分数与 Gamma 对数密度的自动微分相差 {relative_error(out, ref):.2g}（相对误差）；"
                       f"在 x = {float(x[i]):.4g} 处你得到 {float(out[i, 0]):.6g}，正确值是 {float(ref[i, 0]):.6g}。")
    return ("与对数密度的自动微分一致（多组 k、theta，x 从 0.001 到 1000）：归一化常数 log Gamma(k) + k log theta，"
            "即指数族的 A(eta)，始终没有出现。")


# -- A2 ------------------------------------------------------------------------------------------

def _natural_cases(rng):
    g = torch.Generator().manual_seed(41) if rng is None else rng
    dims = (1, 2, 3, 5) if rng is None else tuple(_integer(rng, 1, 7) for _ in range(3))
    for d in dims:
        a = torch.randn(d, d, generator=g, dtype=F64)
        prec = a @ a.T + d * torch.eye(d, dtype=F64)  # a precision matrix Lambda
        mean = torch.randn(d, generator=g, dtype=F64)
        n = 40 if rng is None else _integer(rng, 3, 50)
        yield d, prec, mean, 2 * torch.randn(n, d, generator=g, dtype=F64)


@register("4.1.A2", "Gaussian score from natural parameters", answers=("natural_gaussian_score",))
def _natural_gaussian_score(fn, *, rng=None):
    for d, prec, mean, x in _natural_cases(rng):
        eta1, eta2 = prec @ mean, -0.5 * prec
        dist = torch.distributions.MultivariateNormal(mean, precision_matrix=prec)
        ref = autograd_score(dist.log_prob, x)
        out = as_output(call(fn, x.clone(), eta1.clone(), eta2.clone(), name="natural_gaussian_score"), ref,
                        "natural_gaussian_score(x, eta1, eta2)")
        if close(out, ref, 1e-6):
            continue
        if close(out, -ref, 1e-6):
            raise Mismatch("符号反了：eta2 = -Lambda/2 是负定的，远离均值的点上分数应指回均值。")
        if close(out, eta1 + x @ eta2, 1e-6):
            raise Mismatch("少了因子 2：对称矩阵 eta2 下，x^T eta2 x 的梯度是 2 eta2 x。")
        raise Mismatch(f"在 d = {d} 时你的分数与高斯对数密度的自动微分相差 {relative_error(out, ref):.2g}（相对误差）。"
                       "对形状 (N, d) 的一批点，分数应为 eta1 + 2 x eta2，且对任意维数 d 都成立。")
    return "在 d = 1、2、3、5 上与自动微分一致：分数是 eta1 + 2 eta2 x，对 x 是线性的，不含 A(eta)。"


# -- B1 ------------------------------------------------------------------------------------------

def _two_mode_score_zero() -> float:
    """The unstable fixed point between the modes of two_mode_1d, by bisection in float64."""
    dist = two_mode_1d()
    lo, hi = -1.9, 1.9  # score > 0 just right of the left mode, < 0 just left of the right mode
    f = lambda v: float(dist.score(torch.tensor([[v]], dtype=F64))[0, 0])  # noqa: E731
    assert f(lo) < 0 < f(hi) or f(lo) > 0 > f(hi)
    s_lo = f(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (f(mid) > 0) == (s_lo > 0):
            lo, s_lo = mid, f(mid)
        else:
            hi = mid
    return 0.5 * (lo + hi)


@register("4.1.B1", "the unstable fixed point between two modes", answers=("x_star",), hidden=False)
def _saddle(value):
    v = as_number(value, "x_star")
    ref = _two_mode_score_zero()
    if abs(v - ref) < 1e-3:
        return (f"x* = {ref:.4f}：在它左边分数指向 -2 处的峰，右边指向 +2 处的峰，两侧的流都离开 x*。"
                "它更靠近较轻的那个峰。")
    if abs(v) < 0.005:
        raise Mismatch("0 是两峰的中点；只有两个权重相等时不动点才在那里。权重是 0.3 / 0.7，"
                       "两个吸引域的分界向较轻的峰移动。")
    if min(abs(v - 2), abs(v + 2)) < 0.05:
        raise Mismatch("这（几乎）是一个峰，即稳定不动点；要找的是两峰之间分数为零的点。")
    s = float(two_mode_1d().score(torch.tensor([[v]], dtype=F64))[0, 0])
    raise Mismatch(f"分数在这里不为零：s({v:.4g}) = {s:.3g}。")


# -- B2 ------------------------------------------------------------------------------------------

def _far_points(rng):
    if rng is None:
        right = torch.cat([torch.linspace(6, 20, 15, dtype=F64), torch.tensor([50.0, 200.0], dtype=F64)])
        return torch.cat([-right.flip(0), right])[:, None]
    n = _integer(rng, 5, 40)
    mag = torch.exp(math.log(6.0) + (math.log(500.0) - math.log(6.0)) * torch.rand(n, generator=rng, dtype=F64))
    sign = torch.where(torch.rand(n, generator=rng) < 0.5, -1.0, 1.0).to(F64)
    return torch.cat([mag * sign, torch.tensor([-6.0, 6.0], dtype=F64)])[:, None]


@register("4.1.B2", "far-field score of the two-mode mixture", answers=("far_field_score",))
def _far_field(fn, *, rng=None):
    dist = two_mode_1d()
    x = _far_points(rng)
    ref = dist.score(x)
    out = as_output(call(fn, x.clone(), name="far_field_score"), ref, "far_field_score(x)")
    err = relative_error(out, ref)
    if err < 1e-4:
        return ("在 |x| >= 6 的两侧都与精确分数相差不到 1e-4：远处后验权重全部落在较近的分量上，"
                "分数就是那个高斯的线性回复力。")
    mean = float(dist.mean)
    if close(out, -(x - mean) / 0.25, 1e-3) or close(out, -(x - mean) / float(dist.covariance_matrix), 1e-3):
        raise Mismatch("远处并不是被拉向混合分布的均值：责任 p(k|x) 不会平均，而是选中较近的分量"
                       "（x < 0 时均值为 -2，x > 0 时为 +2）。")
    if close(out, -ref, 1e-3):
        raise Mismatch("符号反了：在远处的右侧，分数必须为负（指回峰的方向）。")
    for side, mask in (("x < 0", x[:, 0] < 0), ("x > 0", x[:, 0] > 0)):
        if close(out[~mask], ref[~mask], 1e-4) and not close(out[mask], ref[mask], 1e-4):
            raise Mismatch(f"你的近似只在一侧正确，在 {side} 一侧不对：两侧各自由较近的分量决定。")
    raise Mismatch(f"你的远场分数与精确分数相差 {err:.2g}（相对误差），检查点取在 6 <= |x| <= 200。")


# -- B3 ------------------------------------------------------------------------------------------

def _stable_cases(rng):
    if rng is None:
        g = torch.Generator().manual_seed(43)
        means = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=F64)
        weights = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
        between = torch.stack([torch.linspace(-3, 3, 60, dtype=F64), 0.3 * torch.randn(60, generator=g, dtype=F64)], -1)
        far = 40 * torch.randn(30, 2, generator=g, dtype=F64)
        cases = [(weights, means, torch.cat([between, far]), s) for s in (1.0, 0.3, 0.01)]
        # the sheet asks for any dimension d: one mode-free line in d = 1 and a cloud in d = 3
        means1 = torch.tensor([[-2.0], [2.0]], dtype=F64)
        x1 = torch.cat([torch.linspace(-3, 3, 25, dtype=F64), torch.tensor([-40.0, 40.0], dtype=F64)])[:, None]
        cases.append((torch.tensor([0.3, 0.7], dtype=F64), means1, x1, 0.05))
        means3 = 3 * torch.randn(4, 3, generator=g, dtype=F64)
        x3 = torch.cat([torch.randn(30, 3, generator=g, dtype=F64), 40 * torch.randn(10, 3, generator=g, dtype=F64)])
        cases.append((torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64), means3, x3, 0.02))
        return cases
    cases = []
    for _ in range(3):
        K, d = _integer(rng, 2, 5), _integer(rng, 1, 4)
        means = 4 * torch.randn(K, d, generator=rng, dtype=F64)
        weights = torch.rand(K, generator=rng, dtype=F64) + 0.05
        weights = weights / weights.sum()
        n = _integer(rng, 10, 60)
        x = torch.cat([3 * torch.randn(n, d, generator=rng, dtype=F64),
                       60 * torch.randn(8, d, generator=rng, dtype=F64)])
        cases.append((weights, means, x, _log_uniform(rng, 0.01, 2.0)))
    return cases


@register("4.1.B3", "a mixture score that does not collapse", points=2.0, answers=("stable_mixture_score",))
def _stable_mixture_score(fn, *, rng=None):
    for weights, means, x, sigma in _stable_cases(rng):
        ref = GaussianMixture(weights, means, sigma**2).score(x)  # float64 reference
        out = call(fn, x.float(), weights.float(), means.float(), sigma, name="stable_mixture_score")
        out = as_output(out, ref.float(), "stable_mixture_score(x, weights, means, sigma)").double()
        d = x.shape[1]
        where = f"在 d = {d}、K = {len(weights)}、sigma = {sigma:.3g} 时"
        if not bool(torch.isfinite(out).all()):
            bad = int((~torch.isfinite(out)).any(-1).sum())
            raise Mismatch(f"{where}你的分数在 {len(x)} 个点中的 {bad} 个上是 NaN 或 inf（float32）："
                           "每个分量的 exp(-|x - mu|^2 / (2 sigma^2)) 都下溢成 0，于是出现 0/0。"
                           "请用 log-sum-exp 计算责任（responsibilities）：先减去每个点最大的 logit 再取 exp，"
                           "例如对分量做 torch.softmax。")
        err = relative_error(out, ref)
        if err > 1e-4:
            raise Mismatch(f"{where}你的分数相差 {err:.2g}（相对误差）。分数是 sum_k p(k|x) (mu_k - x) / sigma^2，"
                           "其中 p(k|x) 正比于 w_k exp(-|x - mu_k|^2 / (2 sigma^2))；实现要对任意维数 d 和分量数 K "
                           "成立。")
    return ("在 float32 下处处有限，且与 float64 参考相差不到 1e-4：sigma 小到 0.01，d = 1、2、3，两峰之间和离峰 "
            "40 倍 sigma 以外都没有坍塌。是 log-sum-exp 的写法让分数不再坍塌。")
