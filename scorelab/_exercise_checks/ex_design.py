"""Checks of the closing design project (a score-based model of time series): milestones M1-M4.

The data are stationary AR(1) series ``x_k = phi x_{k-1} + z_k`` of length ``L = 16`` with
``phi = 0.8``: a Gaussian with the Toeplitz covariance ``C_ij = phi^|i-j| / (1 - phi^2)``, so
the exact score at every diffusion time is known (``scorelab.sdes.exact_score_fn``) and a
model's score and samples can be graded against the truth.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_output, autograd_score, call, close, register, relative_error
from ..distributions import Gaussian
from ..sdes import VPSDE, exact_score_fn

L, PHI = 16, 0.8


def series_covariance() -> torch.Tensor:
    """The (L, L) covariance of the stationary AR(1) series (float64)."""
    k = torch.arange(L, dtype=F64)
    return PHI ** (k[:, None] - k[None, :]).abs() / (1 - PHI**2)


def _lag_correlation(x: torch.Tensor, lag: int) -> float:
    x = x.double()
    return float((x[:, lag:] * x[:, :-lag]).mean() / (x * x).mean())


def _seeds(rng) -> tuple[int, int, int]:
    if rng is None:
        return 0, 1, 2
    a, b, c = (int(v) for v in torch.randint(0, 2**31 - 1, (3,), generator=rng))
    return a, (b if b != a else a + 1), c


def _series_out(fn, n: int, seed: int):
    like = torch.empty(n, L)
    out = as_output(call(fn, n, torch.Generator().manual_seed(seed), name="make_series"), like,
                    f"make_series({n}, generator)", dtype=torch.float32)
    return out


@register("design.M1", "a generator of stationary AR(1) series", answers=("make_series",))
def _series(fn, *, rng=None):
    s0, s1, s2 = _seeds(rng)
    first = _series_out(fn, 5, s0)
    again = _series_out(fn, 5, s0)
    other = _series_out(fn, 5, s1)
    _series_out(fn, 1, s2)  # any n, also a single series
    if not bool(torch.isfinite(first).all()):
        raise Mismatch("生成的序列里有 NaN 或 inf。")
    if not torch.equal(first, again) or torch.equal(first, other):
        raise Mismatch("make_series 的所有随机数都必须从传入的 generator 抽取：同一个种子要给出同样的序列，"
                       "另一个种子给出另外的序列。")
    n = 20_000
    x = _series_out(fn, n, s2).double()
    if not bool(torch.isfinite(x).all()):
        raise Mismatch("生成的序列里有 NaN 或 inf。")
    c = series_covariance()
    var0, var_end = float(x[:, 0].var()), float(x[:, -1].var())
    lag1 = _lag_correlation(x, 1)
    if abs(lag1 + PHI) < 0.05:
        raise Mismatch(f"相邻的值是负相关的（lag-1 相关系数 {lag1:.2f}）：x_k = +phi x_(k-1) + z_k。")
    if abs(lag1) < 0.1:
        raise Mismatch(f"相邻的值不相关（lag-1 相关系数 {lag1:.2f}）：每个 x_k 都要是 phi 乘以前一个值再加上新的噪声。")
    if abs(var0 - 1.0) < 0.1 and abs(var_end - float(c[0, 0])) < 0.3:
        raise Mismatch(f"序列不平稳：var(x_0) = {var0:.2f}，而 var(x_15) = {var_end:.2f}。要从平稳分布出发，"
                       f"x_0 ~ N(0, 1 / (1 - phi^2)) = N(0, {float(c[0, 0]):.3f})。")
    se_mean = math.sqrt(float(c[0, 0]) / n)
    worst_mean = float(x.mean(0).abs().max())
    if not worst_mean <= 5 * se_mean:
        raise Mismatch(f"序列的均值应为 0；各位置的均值中最大的是 {worst_mean:.3f}（5 个标准误差是 {5 * se_mean:.3f}）"
                       "。")
    err = float((torch.cov(x.T) - c).norm() / c.norm())
    if not err <= 0.06:
        raise Mismatch(f"20,000 条序列的协方差与 phi^|i-j| / (1 - phi^2) 相差 {err:.3f}（相对误差，Frobenius 范数）；"
                       f"var(x_0) = {var0:.2f}，lag-1 相关系数 {lag1:.2f}。")
    return (f"20,000 条序列：协方差与 phi^|i-j| / (1 - phi^2) 相差 {err:.3f}，lag-1 相关系数 {lag1:.3f}，"
            "由 generator 可复现，dtype 是 float32。这是一个协方差已知的高斯分布：每个 p_t 的精确分数都能算出来，"
            "用来给你的模型评分。")


@register("design.M2", "the exact score of the series distribution", answers=("series_score",))
def _exact_series_score(fn, *, rng=None):
    c = series_covariance()
    dist = torch.distributions.MultivariateNormal(torch.zeros(L, dtype=F64), covariance_matrix=c)
    if rng is None:
        xs = [2 * torch.randn(64, L, generator=torch.Generator().manual_seed(3), dtype=F64),
              torch.zeros(1, L, dtype=F64) + 1.5]
    else:
        xs = [float(v) * torch.randn(int(n), L, generator=rng, dtype=F64)
              for v, n in zip(0.5 + 3 * torch.rand(2, generator=rng), torch.randint(1, 100, (2,), generator=rng),
                              strict=True)]
    for x in xs:
        ref = autograd_score(dist.log_prob, x)
        out = as_output(call(fn, x.clone(), name="series_score"), ref, "series_score(x)")
        if close(out, ref, 1e-6):
            continue
        if close(out, -ref, 1e-6):
            raise Mismatch("符号反了：分数指回均值 0。")
        if close(out, -x @ c, 1e-6):
            raise Mismatch("N(0, C) 的分数是 -C^-1 x：要用逆矩阵（精度矩阵），而不是 C 本身。")
        raise Mismatch(f"对 {len(x)} 个点，你的分数与 log N(0, C) 的自动微分相差 {relative_error(out, ref):.2g}"
                       "（相对误差）。")
    return ("与高斯对数密度的自动微分一致：s(x) = -C^-1 x，而 C^-1 是三对角的"
            "（每个值只与它的邻居相互作用，这就是马尔可夫性）。")


@register("design.M3", "a trained time-conditional score model", points=2.0, answers=("model",), time_limit=120)
def _model(model, *, rng=None):
    sde = VPSDE()
    gauss = Gaussian(torch.zeros(L, dtype=F64), series_covariance())
    exact = exact_score_fn(sde, gauss)
    if rng is None:
        times, seeds = (0.1, 0.3, 0.6), [10, 30, 60]
    else:  # other times of the same window, other points
        times = tuple(round(0.1 + 0.5 * float(v), 4) for v in torch.rand(3, generator=rng))
        seeds = [int(v) for v in torch.randint(0, 2**31 - 1, (3,), generator=rng)]
    errors = {}
    for t, seed in zip(times, seeds, strict=True):
        xt = sde.marginal(gauss, t).sample(2000, generator=torch.Generator().manual_seed(seed))
        ref = exact(xt, t)
        tt = torch.full((2000,), t)
        out = call(model, xt.float(), tt, name="model")  # with gradients enabled: a score may use autograd
        out = as_output(out, ref, "model(x, t)")
        errors[t] = float(((out - ref) ** 2).sum(-1).mean() / (ref**2).sum(-1).mean())
    worst = max(errors, key=lambda k: errors[k] if math.isfinite(errors[k]) else math.inf)
    table = "，".join(f"t = {t:g}：{e:.4f}" for t, e in errors.items())
    if not all(e <= 0.05 for e in errors.values()):
        hint = ("误差在小 t 处最大，那里分数很大、数据项占主导：多训练一会儿，或者检查模型是否把噪声预测除以了 sigma(t"
                ")。"
                if worst == min(times) else "请检查模型是否在默认 beta 的 VP SDE 上训练。")
        raise Mismatch(f"与 p_t 的精确分数相比的相对分数误差：{table}（每处都要小于 0.05）。{hint}")
    return f"与 p_t 的精确分数相比的相对分数误差：{table}。"


@register("design.M4", "generated series with the right statistics", points=2.0, answers=("samples",), hidden=False)
def _samples(samples):
    if not isinstance(samples, torch.Tensor) or samples.ndim != 2 or samples.shape[1] != L:
        got = f"形状 {tuple(samples.shape)}" if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Mismatch(f"samples 应当是形状为 (N, {L}) 且 N >= 2000 的张量，实际是 {got}。")
    if samples.shape[0] < 2000:
        raise Mismatch(f"请至少生成 2000 条序列（现在是 {samples.shape[0]} 条）：太少的话统计量噪声太大。")
    x = as_output(samples, torch.empty(samples.shape, dtype=F64), "samples").double()
    if not bool(torch.isfinite(x).all()):
        raise Mismatch("有些样本是 NaN 或无穷大：减小步长，或检查采样器的终止时间。")
    c = series_covariance()
    n = x.shape[0]
    err = float((torch.cov(x.T) - c).norm() / c.norm())
    lag1 = _lag_correlation(x, 1)
    var_ratio = float(x.var(0).mean()) / float(c[0, 0])
    # the mean of all N * L values: its variance is 1' C 1 / (N L^2) under the true law
    se_mean = math.sqrt(float(c.sum()) / (n * L * L))
    mean = float(x.mean())
    if not abs(mean) <= 5 * se_mean:
        raise Mismatch(f"样本的均值是 {mean:.3f}，而真实分布的均值是 0（{n} 条序列时标准误差约 {se_mean:.3f}，"
                       f"你偏离了 {abs(mean) / se_mean:.0f} 个）：采样器或模型有系统性的偏移。")
    if err < 0.12 and abs(lag1 - PHI) < 0.04:
        return (f"协方差与真实值相差 {err:.3f}（相对误差），lag-1 相关系数 {lag1:.3f}（真实值 {PHI}），"
                f"方差比 {var_ratio:.3f}，均值 {mean:.3f}（标准误差 {se_mean:.3f}）。")
    hint = ""
    if var_ratio < 0.8:
        hint = "方差太小：样本向均值塌缩（去噪过度，或分数太强）。"
    elif var_ratio > 1.25:
        hint = "方差太大：采样器停得太早（t_eps 太大）或步数太少。"
    elif abs(lag1 - PHI) >= 0.04:
        hint = "边缘方差对了，但时间上的相关不对：模型没有学到相邻值之间的相互作用。"
    raise Mismatch(f"协方差误差 {err:.3f}（需要 < 0.12），lag-1 相关系数 {lag1:.3f}（需要 {PHI} ± 0.04），"
                   f"方差比 {var_ratio:.2f}。{hint}")
