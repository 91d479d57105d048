"""Checks of exercise 4.2 (three score-matching objectives): parts A1, A2, A3, B1, B2.

The losses are checked on a small seeded float64 network and a fixed batch: the value
against scorelab's tested losses (A1) or a direct autograd evaluation (A2, A3), and the
gradient with respect to the network's parameters against the reference gradient, since a
loss that has the right value but does not train (a trace computed without
``create_graph=True``) is the classic mistake of Hyvärinen's objective.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, call, register
from ..losses import explicit_score_matching_loss
from ..nets import MLPScore


def _setups(seed: int, rng):
    """(model, x, generator) for each dimension tried: d = 1, 2, 3 on the notebook's inputs, random
    dimensions, sizes and weights for the hidden variant."""
    if rng is None:
        dims, seeds, sizes = (2, 1, 3), (seed, seed + 10, seed + 20), (64, 64, 64)
    else:
        dims = tuple(int(d) for d in torch.randint(1, 6, (2,), generator=rng))
        seeds = tuple(int(s) for s in torch.randint(0, 2**31 - 1, (2,), generator=rng))
        sizes = tuple(int(n) for n in torch.randint(5, 80, (2,), generator=rng))
    for d, s, n in zip(dims, seeds, sizes, strict=True):
        g = torch.Generator().manual_seed(s)
        model = MLPScore(d, hidden=16, depth=2, seed=s).double()
        yield model, 1.5 * torch.randn(n, d, generator=g, dtype=F64), g


def _snapshot(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _unchanged(model, snapshot) -> None:
    if not all(torch.equal(p.detach(), q) for p, q in zip(model.parameters(), snapshot, strict=True)):
        raise Mismatch("你的损失函数修改了网络的参数（例如调用了 optimizer.step() 或原地改了权重）："
                       "损失函数只应计算并返回损失，不要更新网络。")


def _params_grad(loss: torch.Tensor, model) -> list[torch.Tensor] | None:
    params = list(model.parameters())
    if not loss.requires_grad:
        return None
    try:
        grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    except RuntimeError:
        raise Mismatch("无法对你返回的损失求梯度：计算图已经被释放了。是不是在损失函数里调用了 .backward()？"
                       "损失函数只返回损失张量，反向传播由训练循环（或检查）来做。") from None
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _scalar(value, name: str) -> torch.Tensor:
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        raise Mismatch(f"{name} 应当返回一个标量张量，而不是 Python 数：.item() 或 float() 会切断计算图，"
                       "优化器就拿不到梯度了。")
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        got = f"形状为 {tuple(value.shape)} 的张量" if isinstance(value, torch.Tensor) else type(value).__name__
        raise Mismatch(f"{name} 应当返回一个标量张量（批量平均），实际返回的是 {got}。")
    if value.is_complex() or not value.is_floating_point():
        raise Mismatch(f"{name} 应当返回实数浮点张量，实际 dtype 是 {value.dtype}。")
    return value.reshape(())


def _near(a: float, b: float, tol: float = 1e-8) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))  # False for NaN


def _compare_loss(name, student, reference, alternatives, model):
    """Value, then gradient; ``alternatives`` maps a wrong-but-plausible value to its hint."""
    value, ref_value = float(student.detach()), float(reference.detach())
    d = model.dim
    if not _near(value, ref_value):
        for alt, hint in alternatives:
            if _near(value, float(alt.detach())):
                raise Mismatch(hint)
        if not math.isfinite(value):
            raise Mismatch(f"在 d = {d} 的测试批量上 {name} 的值是 {value}，应为 {ref_value:.6g}。")
        raise Mismatch(f"在 d = {d} 的测试批量上 {name} = {value:.6g}，正确值是 {ref_value:.6g}"
                       "（实现要对任意维数 d 成立，不要把维数写死）。")
    g_student, g_ref = _params_grad(student, model), _params_grad(reference, model)
    if g_student is None:
        raise Mismatch(f"{name} 的数值对了，但它不依赖网络参数（没有梯度）：是不是 detach 了，或者用了 .item()？"
                       "请直接返回张量本身。")
    num = sum(float((a - b).norm() ** 2) for a, b in zip(g_student, g_ref, strict=True)) ** 0.5
    den = sum(float(b.norm() ** 2) for b in g_ref) ** 0.5
    if not num <= 1e-6 * den:
        raise Mismatch(f"{name} 的数值对了，但它对参数的梯度相差 {num / den:.2g}（相对误差）：导数项必须留在计算图里，"
                       "即 torch.autograd.grad(..., create_graph=True)，否则训练会忽略它。")


@register("4.2.A1", "explicit (Hyvärinen) score matching with the exact trace", answers=("esm_loss",))
def _esm(fn, *, rng=None):
    for model, x, _ in _setups(421, rng):
        snap = _snapshot(model)
        out = _scalar(call(fn, model, x.clone(), name="esm_loss"), "esm_loss(score_fn, x)")
        _unchanged(model, snap)
        with torch.enable_grad():
            ref = explicit_score_matching_loss(model, x)
            xg = x.clone().requires_grad_(True)
            s = model(xg)
            div = sum(torch.autograd.grad(s[:, j].sum(), xg, create_graph=True, retain_graph=True)[0][:, j]
                      for j in range(model.dim))
            sq = (s * s).sum(-1)
            alternatives = [
                ((div + sq).mean(), "平方项少了系数 1/2：E[tr(ds/dx) + 1/2 |s|^2]。"),
                ((-div + 0.5 * sq).mean(), "迹项的符号应为 +：分部积分把 -E[s . grad log p] 变成 +E[tr(ds/dx)]。"),
                ((div + 0.5 * sq).sum(), "对批量应取平均（mean），而不是求和（sum）。"),
                ((0.5 * sq).mean(), "少了迹项 tr(ds/dx)。"),
            ]
        _compare_loss("esm_loss", out, ref, alternatives, model)
    return ("数值和参数梯度都与 scorelab 的 explicit_score_matching_loss 一致（d = 1、2、3）：精确的迹要 d 次反向传播，"
            "代价随 d 线性增长。")


@register("4.2.A2", "denoising score matching with given noise", answers=("dsm_loss",))
def _dsm(fn, *, rng=None):
    sigmas = (0.4, 0.05, 2.0) if rng is None else tuple(float(v) for v in 0.02 + 2 * torch.rand(2, generator=rng))
    for (model, x, g), sigma in zip(_setups(422, rng), sigmas, strict=True):
        eps = torch.randn(x.shape, generator=g, dtype=F64)
        snap = _snapshot(model)
        out = _scalar(call(fn, model, x.clone(), sigma, eps.clone(), name="dsm_loss"),
                      "dsm_loss(score_fn, x, sigma, eps)")
        _unchanged(model, snap)
        with torch.enable_grad():
            s_noisy = model(x + sigma * eps)
            ref = 0.5 * ((s_noisy + eps / sigma) ** 2).sum(-1).mean()
            alternatives = [
                (0.5 * ((s_noisy - eps / sigma) ** 2).sum(-1).mean(),
                 "目标的符号反了：N(x~; x, sigma^2 I) 在 x~ = x + sigma eps 处的分数是 -(x~ - x)/sigma^2 = -eps/sigma，"
                 "所以残差是 s + eps/sigma。"),
                (0.5 * ((s_noisy + eps) ** 2).sum(-1).mean(), "目标是 -eps/sigma，不是 -eps：要除以 sigma。"),
                (((s_noisy + eps / sigma) ** 2).sum(-1).mean(), "平方残差少了系数 1/2。"),
                (0.5 * ((model(x) + eps / sigma) ** 2).sum(-1).mean(),
                 "网络要在加噪后的点 x + sigma eps 处求值，而不是在干净的 x 处。"),
                (0.5 * ((s_noisy + eps / sigma) ** 2).sum(), "对批量应取平均（mean），而不是求和（sum）。"),
                (0.5 * ((s_noisy + eps / sigma) ** 2).mean(),
                 "你对坐标也取了平均：平方误差要对 d 个坐标求和，只对批量取平均。"),
            ]
        _compare_loss("dsm_loss", out, ref, alternatives, model)
    return "数值和梯度都与 1/2 E|s(x + sigma eps) + eps/sigma|^2 一致（三个 sigma、d = 1、2、3）：完全不需要 s 的导数。"


@register("4.2.A3", "sliced score matching with given projections", answers=("ssm_loss",))
def _ssm(fn, *, rng=None):
    for model, x, g in _setups(423, rng):
        v = torch.randn(x.shape, generator=g, dtype=F64)
        snap = _snapshot(model)
        out = _scalar(call(fn, model, x.clone(), v.clone(), name="ssm_loss"), "ssm_loss(score_fn, x, v)")
        _unchanged(model, snap)
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            s = model(xg)
            sv = (s * v).sum(-1)
            (vjp,) = torch.autograd.grad(sv.sum(), xg, create_graph=True, retain_graph=True)
            vjv = (vjp * v).sum(-1)
            div = sum(torch.autograd.grad(s[:, j].sum(), xg, create_graph=True, retain_graph=True)[0][:, j]
                      for j in range(model.dim))
            ref = (vjv + 0.5 * sv**2).mean()
            alternatives = [
                ((vjv + 0.5 * (s * s).sum(-1)).mean(),
                 "这是方差缩减的形式（SSM-VR，第二项用 1/2 |s|^2）：期望相同，但本题要求朴素估计量 1/2 (v^T s)^2。"),
                ((vjv + sv**2).mean(), "投影平方项少了系数 1/2。"),
                ((-vjv + 0.5 * sv**2).mean(), "投影导数项的符号应为 +。"),
            ]
            if model.dim > 1:  # in d = 1 the trace and the projection coincide up to v^2
                alternatives.insert(1, ((div + 0.5 * sv**2).mean(),
                                        "你用了精确的迹 tr(ds/dx)；切片分数匹配把它换成 v^T (ds/dx) v，"
                                        "无论 d 多大都只要一次向量-雅可比积。"))
        _compare_loss("ssm_loss", out, ref, alternatives, model)
    return ("数值和梯度都与 E[v^T (ds/dx) v + 1/2 (v^T s)^2] 一致（d = 1、2、3）；对满足 E[v v^T] = I 的 v 取平均，"
            "它等于 Hyvärinen 的目标。")


@register("4.2.B1", "the minimiser of DSM for a linear model", answers=("a_star",), hidden=False)
def _dsm_linear_optimum(value):
    a = as_number(value, "a_star")
    s2, sigma = 2.0, 0.5
    ref = -1.0 / (s2 + sigma**2)
    if abs(a - ref) < 1e-3:
        return (f"a* = -1/(s^2 + sigma^2) = {ref:.4f}：DSM 拟合的是加噪后分布 N(0, s^2 + sigma^2) 的分数，"
                "而不是数据本身的分数；只有 sigma -> 0 时它才趋于 -1/s^2。")
    if abs(a + 1.0 / s2) < 1e-3:
        raise Mismatch("-1/s^2 是干净数据的分数系数；DSM 的最优解是加噪数据 x + sigma eps 的分数，"
                       "它的方差是 s^2 + sigma^2。")
    if abs(a + 1.0 / sigma**2) < 1e-3:
        raise Mismatch("-1/sigma^2 只在数据没有任何散布（s = 0）时才对；加噪后的方差是 s^2 + sigma^2。")
    if abs(a - 1.0 / (s2 + sigma**2)) < 1e-3:
        raise Mismatch("符号反了：中心化高斯的分数指回 0，所以 a < 0。")
    raise Mismatch(f"a = {a:.4g} 不是 E[1/2 (a (x + sigma eps) + eps/sigma)^2] 的最小点（x ~ N(0, {s2})，"
                   f"sigma = {sigma}）：对 a 求导并令导数为零。")


_A = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=F64)
_SIGMA = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=F64)


@register("4.2.B2", "Hyvärinen's objective of a linear field in closed form", answers=("esm_value",), hidden=False)
def _esm_linear(value):
    j = as_number(value, "esm_value")
    # E over x ~ N(0, Sigma) of 1/2 |A x|^2 + tr(A), the square term from the Cholesky factor
    chol = torch.linalg.cholesky(_SIGMA)
    half_sq = 0.5 * float((_A @ chol).square().sum())
    tr = float(torch.trace(_A))
    ref = half_sq + tr
    tol = 1e-6 * max(1.0, abs(ref))
    if abs(j - ref) < tol:
        best = -0.5 * float(torch.trace(torch.linalg.inv(_SIGMA)))
        return (f"J(A) = 1/2 tr(A Sigma A^T) + tr(A) = {ref:.4f}；对 A 的最小值在 A = -Sigma^-1（真正的分数）处取到，"
                f"等于 -1/2 tr(Sigma^-1) = {best:.4f}。")
    if abs(j - (2 * half_sq + tr)) < tol:
        raise Mismatch("平方项少了系数 1/2：J = E[1/2 |A x|^2] + tr(A)。")
    if abs(j - (half_sq - tr)) < tol:
        raise Mismatch("x -> A x 的散度是 +tr(A)，它以 + 号进入目标。")
    if abs(j - (0.5 * float((_A * _A).sum()) + tr)) < tol:
        raise Mismatch("E[|A x|^2] 取决于数据的协方差：它是 tr(A Sigma A^T)，而不是 tr(A^T A)。")
    raise Mismatch(f"{j:.6g} 不是题中 A、Sigma 下 x ~ N(0, Sigma) 的 E[1/2 |A x|^2 + tr(A)]。")
