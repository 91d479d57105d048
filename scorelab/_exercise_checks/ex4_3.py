"""Checks of exercise 4.3 (a basic NCSN, piece by piece): parts A1, A2, A3, A4, B1.

References: the noise schedule against ``scorelab.samplers.geometric_sigmas``; the loss
against a direct float64 evaluation of the NCSN objective on a fixed batch, level indices and
noise, value and gradient with respect to the score model's parameters, in several
dimensions; the step sizes and the whole annealed sampler against
``scorelab.samplers.sample_annealed_langevin`` itself (its callback reports every step size,
and, with a zero score, the Gaussian noise it draws, which is then handed to the student's
sampler); the mode weight against the true mixture weight, with a tolerance from the binomial
standard error of the number of particles.
"""

from __future__ import annotations

import math

import torch

from .._exercise_kit import F64, Mismatch, as_number, as_output, call, close, register, relative_error
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


def _uniform(rng, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=F64))


def _integer(rng, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=rng))


def _random_schedule(rng, L_max: int = 30) -> tuple[float, float, int]:
    sigma_max = math.exp(_uniform(rng, math.log(1.0), math.log(100.0)))
    sigma_min = sigma_max * math.exp(_uniform(rng, math.log(1e-4), math.log(0.7)))
    return sigma_max, sigma_min, _integer(rng, 2, L_max)


# -- A1: the geometric schedule ------------------------------------------------------------

@register("4.3.A1", "the geometric noise schedule", answers=("my_geometric_sigmas",))
def _geometric(fn, *, rng=None):
    cases = (((20.0, 1.0, 10), (50.0, 0.01, 25), (1.0, 0.5, 2), (348.0, 0.01, 232)) if rng is None
             else tuple(_random_schedule(rng, 300) for _ in range(4)))
    for sigma_max, sigma_min, L in cases:
        ref = geometric_sigmas(sigma_max, sigma_min, L, dtype=F64)
        name = f"my_geometric_sigmas({sigma_max:g}, {sigma_min:g}, {L})"
        out = call(fn, sigma_max, sigma_min, L, name="my_geometric_sigmas")
        if isinstance(out, torch.Tensor) and out.ndim == 1 and out.shape[0] in (L - 1, L + 1):
            extra = "多了一级" if out.shape[0] == L + 1 else "少了一级"
            raise Mismatch(f"{name} 返回了 {out.shape[0]} 个级别，{extra}：恰好有 L 个级别，sigma_1 = sigma_max …… "
                           "sigma_L = sigma_min，指数是 (i - 1)/(L - 1)，i = 1, ..., L。")
        out = as_output(out, ref, name)
        if close(out, ref, 1e-5):
            continue
        if close(out, ref.flip(0), 1e-5):
            raise Mismatch("顺序反了：NCSN 的级别从最大噪声排到最小噪声（sigma_1 > sigma_2 > ... > sigma_L），"
                           "也就是退火 Langevin 访问它们的顺序。")
        if close(out, torch.linspace(sigma_max, sigma_min, L, dtype=F64), 1e-5):
            raise Mismatch("这是等间距（线性）的级别：几何序列相邻两级之比 sigma_(i+1)/sigma_i 是常数，"
                           "即 log sigma 等间距（torch.logspace，或对一串等间距的对数取 exp）。")
        first, last = float(out[0]), float(out[-1])
        if not (math.isclose(first, sigma_max, rel_tol=1e-5) and math.isclose(last, sigma_min, rel_tol=1e-5)):
            raise Mismatch(f"端点不对：对 ({sigma_max:g}, {sigma_min:g}, L = {L}) 你返回 sigma_1 = {first:.4g}、"
                           f"sigma_L = {last:.4g}；它们必须恰好是 sigma_max 和 sigma_min，所以指数是 (i - 1)/(L - 1)，"
                           "不是 i/L。")
        raise Mismatch(f"对 ({sigma_max:g}, {sigma_min:g}, L = {L}) 你的级别与几何序列相差 "
                       f"{relative_error(out, ref):.2g}（相对误差）；正确的开头是 "
                       f"{[round(v, 4) for v in ref.tolist()][:4]} ……")
    return ("与 scorelab 的 geometric_sigmas 一致（L 从 2 到 232）：相邻两级之比不变，"
            "p_sigma_i 与 p_sigma_(i+1) 的重叠在每一级都一样。")


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


def _loss_setups(rng):
    if rng is None:
        plan = [(432, 256, 3, (5.0, 0.1, 6)), (433, 40, 1, (10.0, 0.01, 4)), (434, 17, 2, (1.0, 0.5, 2))]
    else:
        plan = [(_integer(rng, 0, 2**31 - 2), _integer(rng, 2, 120), _integer(rng, 1, 5), _random_schedule(rng, 12))
                for _ in range(2)]
    for seed, N, d, (smax, smin, L) in plan:
        g = torch.Generator().manual_seed(seed)
        x = 1.5 * torch.randn(N, d, generator=g, dtype=F64)
        sigmas = geometric_sigmas(smax, smin, L, dtype=F64)
        idx = torch.randint(0, len(sigmas), (N,), generator=g)
        z = torch.randn(N, d, generator=g, dtype=F64)
        yield _ToyScore(d), x, sigmas, idx, z


def _grads(loss: torch.Tensor, model) -> torch.Tensor | None:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return None
    try:
        grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True, retain_graph=True)
    except RuntimeError:
        raise Mismatch("无法对你返回的损失求梯度：计算图已经被释放了。是不是在损失函数里调用了 .backward()？"
                       "损失函数只返回损失张量，反向传播由训练循环（或检查）来做。") from None
    return torch.cat([torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
                      for p, g in zip(model.parameters(), grads, strict=True)])


@register("4.3.A2", "the NCSN loss for given levels and noise", points=2.0, answers=("ncsn_loss_given_noise",))
def _ncsn_loss(fn, *, rng=None):
    for model, x, sigmas, idx, z in _loss_setups(rng):
        N, d = x.shape
        before = [p.detach().clone() for p in model.parameters()]
        out = call(fn, model, x.clone(), sigmas.clone(), idx.clone(), z.clone(), name="ncsn_loss_given_noise")
        if not all(torch.equal(p.detach(), q) for p, q in zip(model.parameters(), before, strict=True)):
            raise Mismatch("你的损失函数修改了模型的参数：损失函数只应计算并返回损失，不要更新模型。")
        if isinstance(out, (float, int)) and not isinstance(out, bool):
            raise Mismatch("请把损失作为 torch 标量张量返回，而不是 Python 数：.item() 或 float() 会切断计算图，"
                           "优化器就拿不到梯度了。")
        if not isinstance(out, torch.Tensor):
            raise Mismatch(f"ncsn_loss_given_noise 应当返回一个标量 torch.Tensor，实际返回的是 {type(out).__name__}。")
        if out.is_complex() or not out.is_floating_point():
            raise Mismatch(f"ncsn_loss_given_noise 应当返回实数浮点张量，实际 dtype 是 {out.dtype}。")
        if out.numel() == N and N > 1:
            raise Mismatch(f"你返回了每个样本一个值（形状 {tuple(out.shape)}）；损失是它们在批量上的平均，只是一个数。")
        if out.numel() != 1:
            raise Mismatch(f"ncsn_loss_given_noise 应当返回一个标量张量，实际形状是 {tuple(out.shape)}。")
        out = out.reshape(())

        with torch.enable_grad():
            sig = sigmas[idx][:, None]  # (N, 1): the level of each example
            x_noisy = x + sig * z
            s_noisy = model(x_noisy, sigmas[idx])
            per_dim = (sig * s_noisy + z) ** 2  # sigma^2 |s + z / sigma|^2, per coordinate
            ref = 0.5 * per_dim.sum(-1).mean()
        value, ref_value = float(out.detach()), float(ref.detach())
        if not math.isclose(value, ref_value, rel_tol=1e-6):
            with torch.enable_grad():
                alternatives = [
                    (0.5 * ((s_noisy + z / sig) ** 2).sum(-1).mean(),
                     "少了权重 lambda(sigma) = sigma^2：1/2 |s + z/sigma|^2 的量级是 d/sigma^2，"
                     "不加权时最小的几级会淹没整个损失。每个样本要乘以它自己的 sigma^2。"),
                    (0.5 * (sig * (s_noisy + z / sig) ** 2).sum(-1).mean(),
                     "权重是 sigma^2，不是 sigma：lambda(sigma) = sigma^2 让每一级的损失都是 d 的量级。"),
                    (0.5 * ((sig * s_noisy - z) ** 2).sum(-1).mean(),
                     "目标的符号反了：x~ = x + sigma z，所以 grad_x~ log N(x~; x, sigma^2 I) = -(x~ - x)/sigma^2 = "
                     "-z/sigma，回归目标是 -z/sigma。"),
                    (per_dim.sum(-1).mean(), "少了系数 1/2：每个样本的损失是 1/2 |sigma s + z|^2。"),
                    (0.5 * per_dim.sum(), "你对批量求了和：损失是批量平均，这样它不会随 N 增大。"),
                    (0.5 * ((sig * model(x, sigmas[idx]) + z) ** 2).sum(-1).mean(),
                     "分数要在加噪后的点 x~ = x + sigma z 处求值（网络做的是去噪），而不是在干净的 x 处。"),
                    (0.5 * ((sig * model(x + sig**2 * z, sigmas[idx]) + z) ** 2).sum(-1).mean(),
                     "加噪点是 x + sigma z，乘的是标准差 sigma，不是方差 sigma^2。"),
                ]
                if d > 1:
                    alternatives.insert(3, (0.5 * per_dim.mean(),
                                            "你对坐标也取了平均：本练习（以及 scorelab.losses.ncsn_loss）的约定"
                                            "是平方误差对 d 个坐标求和，只对批量取平均。"))
            for alt, hint in alternatives:
                if math.isclose(value, float(alt.detach()), rel_tol=1e-6):
                    raise Mismatch(hint)
            raise Mismatch(f"在 N = {N}、d = {d} 的测试批量上你的损失是 {value:.6g}，NCSN 的目标是 {ref_value:.6g}。"
                           "对每个样本：sigma = sigmas[idx]，x~ = x + sigma z，损失项 1/2 |sigma s(x~, sigma) + z|^2 "
                           "对坐标求和；然后对批量取平均。实现要对任意维数 d 成立。")
        g_out, g_ref = _grads(out, model), _grads(ref, model)
        if g_out is None:
            raise Mismatch("数值对了，但损失不依赖模型的参数：它是在 torch.no_grad() 下算的，或者被 detach 了。"
                           "请保留计算图，否则无法训练。")
        if not close(g_out, g_ref, 1e-6):
            raise Mismatch(f"数值对了，但它对模型参数的梯度相差 {relative_error(g_out, g_ref):.2g}（相对误差）："
                           "计算的一部分脱离了计算图（是不是对分数用了 .detach()？）。")
    return ("数值和梯度都与 NCSN 的目标一致（d = 1、2、3）：取 lambda = sigma^2 时，每个样本贡献 "
            "1/2 |sigma s(x + sigma z, sigma) + z|^2，在每一级都是 d 的量级。")


# -- A3: the step sizes of annealed Langevin ------------------------------------------------

def _zero_score(x, sigma):
    return torch.zeros_like(x)


def _scorelab_step_sizes(eps: float, sigmas: torch.Tensor) -> torch.Tensor:
    """The step size scorelab's sampler uses at each level, read from its callback."""
    steps = []
    sample_annealed_langevin(_zero_score, torch.zeros(1, 1, dtype=F64), sigmas, eps=eps, n_steps_each=1,
                             denoise=False, generator=0, callback=lambda info: steps.append(info["step_size"]))
    return torch.tensor(steps, dtype=F64)


@register("4.3.A3", "step sizes of annealed Langevin", answers=("annealed_step_sizes",))
def _step_sizes(fn, *, rng=None):
    if rng is None:
        cases = ((0.1, geometric_sigmas(10.0, 0.1, 5, dtype=F64)), (2e-5, geometric_sigmas(50.0, 0.01, 6, dtype=F64)),
                 (0.1, geometric_sigmas(20.0, 1.0, 10, dtype=F64)), (0.3, geometric_sigmas(2.0, 1.0, 2, dtype=F64)))
    else:
        cases = tuple((math.exp(_uniform(rng, math.log(1e-6), math.log(0.5))),
                       geometric_sigmas(*_random_schedule(rng, 40), dtype=F64)) for _ in range(3))
    for eps, sigmas in cases:
        ref = _scorelab_step_sizes(eps, sigmas)
        out = as_output(call(fn, eps, sigmas.clone(), name="annealed_step_sizes"), ref,
                        f"annealed_step_sizes({eps:g}, sigmas)")
        if close(out, ref, 1e-6):
            continue
        s, sl2 = sigmas, float(sigmas[-1]) ** 2
        if close(out, eps * sl2 / s**2, 1e-6):
            raise Mismatch("比值倒过来了：步长随噪声增大，alpha_i = eps sigma_i^2 / sigma_L^2，"
                           "所以第一级（最大的 sigma）步长最大。")
        if close(out, eps * s / float(sigmas[-1]), 1e-6):
            raise Mismatch("要用 sigma_i^2，而不是 sigma_i：p_sigma 的分数量级是 1/sigma，一步的漂移 alpha s 的量级是 "
                           "alpha/sigma，噪声是 sqrt(2 alpha)；只有 alpha 正比于 sigma^2 时两者之比在每一级才相同。")
        if close(out, eps * s**2, 1e-6):
            raise Mismatch("还要除以 sigma_L^2：eps 是最后一级（最小噪声）的步长，alpha_L = eps。")
        if close(out, eps * s**2 / float(sigmas[0]) ** 2, 1e-6):
            raise Mismatch("要用最小的级别 sigma_L^2 归一化，而不是最大的：eps 是最后一级的步长，alpha_L = eps。")
        if close(out, torch.full_like(ref, eps), 1e-6):
            raise Mismatch("每一级用同一个步长正是退火要避免的：alpha_i = eps sigma_i^2 / sigma_L^2，步长随噪声缩小。")
        if close(out, ref.flip(0), 1e-6):
            raise Mismatch("顺序反了：每一级一个步长，顺序与 sigmas 相同（最大噪声在前）。")
        raise Mismatch(f"eps = {eps:g} 时你的步长与 eps sigma_i^2 / sigma_L^2 相差 {relative_error(out, ref):.2g}"
                       f"（相对误差）；正确的是 {[f'{v:.4g}' for v in ref.tolist()[:6]]} ……")
    return ("与 scorelab 的 sample_annealed_langevin 用的步长一致：alpha_i / sigma_i^2 是常数，"
            "每一级的漂移与噪声之比都相同，且 alpha_L = eps。")


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


def _sampler_setups(rng):
    """(score, x0, sigmas, eps, T, seed): the notebook's case in d = 2 (and a small one in d = 3), or
    random mixtures, dimensions and schedules for the hidden variant."""
    if rng is None:
        g = torch.Generator().manual_seed(434)
        x0 = (torch.rand(300, 2, generator=g, dtype=F64) * 2 - 1) * 8
        yield noised_score(three_modes()), x0, geometric_sigmas(10.0, 0.5, 5, dtype=F64), 0.02, 6, 4343
        means = 3 * torch.randn(3, 3, generator=g, dtype=F64)
        mix = GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=F64), means, torch.ones(3, dtype=F64))
        yield noised_score(mix), 4 * torch.randn(20, 3, generator=g, dtype=F64), geometric_sigmas(
            5.0, 0.3, 3, dtype=F64), 0.01, 4, 4344
        return
    for _ in range(2):
        d, K = _integer(rng, 1, 4), _integer(rng, 1, 4)
        means = 4 * torch.randn(K, d, generator=rng, dtype=F64)
        w = torch.rand(K, generator=rng, dtype=F64) + 0.1
        mix = GaussianMixture(w / w.sum(), means, torch.ones(K, dtype=F64))
        x0 = 6 * torch.randn(_integer(rng, 1, 60), d, generator=rng, dtype=F64)
        smax, smin, L = _random_schedule(rng, 6)
        smin = max(smin, 0.05)
        eps = smin**2 * math.exp(_uniform(rng, math.log(1e-3), math.log(0.1)))  # stable: alpha_i / sigma_i^2 <= 0.1
        yield (noised_score(mix), x0, geometric_sigmas(smax, smin, L, dtype=F64), eps, _integer(rng, 1, 5),
               _integer(rng, 0, 2**31 - 2))


@register("4.3.A4", "annealed Langevin dynamics", points=2.0, answers=("annealed_langevin",))
def _annealed(fn, *, rng=None):
    for score, x0, sigmas, eps, T, seed in _sampler_setups(rng):
        noise = _scorelab_noise(x0, sigmas, eps, T, seed)
        ref = sample_annealed_langevin(score, x0, sigmas, eps=eps, n_steps_each=T, denoise=False, generator=seed)
        x_in = x0.clone()
        out = call(fn, score, x_in, sigmas.clone(), eps, noise.clone(), name="annealed_langevin")
        out = as_output(out, ref, "annealed_langevin(score_fn, x0, sigmas, eps, noise)")
        if not torch.equal(x_in, x0):
            raise Mismatch("你的采样器原地修改了 x0（对输入做了 x += ...）：请从 x = x0.clone() 开始，或者写成 "
                           "x = x + ...，这样调用者的起点才不会被改掉。")
        if close(out, ref, 1e-8):
            continue
        lv = sigmas.tolist()
        sl2 = lv[-1] ** 2
        alphas = [eps * s**2 / sl2 for s in lv]
        variants = [
            (dict(score_sigmas=lv, alphas=alphas, noise_factor=1.0),
             "噪声项是 sqrt(2 alpha_i) z，不是 sqrt(alpha_i) z：噪声太小时，链采到的是 p^2（归一化后），比 p 更尖。"),
            (dict(score_sigmas=lv, alphas=alphas, drift_sign=-1.0),
             "漂移的符号反了：x <- x + alpha_i s(x, sigma_i) + ...，分数指向数据所在的高处。"),
            (dict(score_sigmas=lv, alphas=[eps] * len(lv)),
             "每一级都用同一个步长 eps：步长要随噪声缩小，alpha_i = eps sigma_i^2 / sigma_L^2（A3），"
             "否则大噪声的几级几乎不移动粒子。"),
            (dict(score_sigmas=lv, alphas=[eps * sl2 / s**2 for s in lv]),
             "步长的比值倒过来了：alpha_i = eps sigma_i^2 / sigma_L^2（最大的噪声步长最大）。"),
            (dict(score_sigmas=lv, alphas=[eps * s / lv[-1] for s in lv]),
             "步长用了 sigma_i 而不是 sigma_i^2：alpha_i = eps sigma_i^2 / sigma_L^2。"),
            (dict(score_sigmas=lv[::-1], alphas=alphas[::-1]),
             "级别的顺序反了：从最大的噪声 sigma_1 开始，到 sigma_L 结束，"
             "与 sigmas 的顺序相同（noise[i] 属于第 i 级）。"),
            (dict(score_sigmas=lv[::-1], alphas=[eps * s**2 / lv[0] ** 2 for s in lv[::-1]]),
             "级别的顺序反了：从最大的噪声 sigma_1 开始，到 sigma_L 结束，"
             "与 sigmas 的顺序相同（noise[i] 属于第 i 级），且 alpha_i = eps sigma_i^2 / sigma_L^2。"),
            (dict(score_sigmas=[lv[-1]] * len(lv), alphas=alphas),
             "分数总是在最后一级求值：要把当前一级的 sigma_i 传给 score_fn(x, sigma_i)。"),
            (dict(score_sigmas=[lv[0]] * len(lv), alphas=alphas),
             "分数总是在第一级求值：要把当前一级的 sigma_i 传给 score_fn(x, sigma_i)。"),
        ]
        if len(lv) > 1:
            for kwargs, hint in variants:
                if close(out, _annealed_variant(score, x0, noise=noise, **kwargs), 1e-8):
                    raise Mismatch(hint)
        if close(out, ref + sl2 * score(ref, lv[-1]), 1e-8):
            raise Mismatch("最后的 Tweedie 去噪一步 x + sigma_L^2 s(x, sigma_L) 不属于这个函数："
                           "返回最后一次 Langevin 更新之后的粒子。")
        err = relative_error(out, ref)
        N, d = x0.shape
        raise Mismatch(f"在 N = {N}、d = {d}、L = {len(lv)}、T = {T} 时，你的粒子与使用同样噪声的退火 Langevin 相差 "
                       f"{err:.2g}（相对误差）。对每一级 i（最大的 sigma 在前），for t in range(T)：x <- x + alpha_i "
                       "s(x, sigma_i) + sqrt(2 alpha_i) noise[i, t]，alpha_i = eps sigma_i^2 / sigma_L^2；"
                       "T 从 noise.shape[1] 读出，维数 d 任意。")
    return ("与 scorelab 的 sample_annealed_langevin 在同样的噪声下逐步一致（d = 2 和 3）：大噪声的几级让粒子在峰之间"
            "移动，小噪声的几级把它们聚拢，每一级的漂移与噪声之比相同。")


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


@register("4.3.B1", "the weight of the smallest mode, with and without annealing", points=2.0,
          answers=("w_small", "n_particles"), hidden=False)
def _small_mode(value, n_particles):
    v = as_number(value, "w_small")
    n = as_number(n_particles, "n_particles")
    if n != int(n) or n < 1:
        raise Mismatch(f"n_particles 应当是你用的粒子数（一个正整数），收到的是 {n:g}。")
    n = int(n)
    truth = B1_WEIGHTS[2]
    if n < B1_MIN_PARTICLES:
        raise Mismatch(f"{n} 个粒子时，比例 0.1 的二项标准误差是 {math.sqrt(truth * (1 - truth) / n):.3f}："
                       f"太粗，分不出采样器是对是错。请至少用 {B1_MIN_PARTICLES} 个粒子。")
    se = math.sqrt(truth * (1 - truth) / n)
    tol = b1_tolerance(n)
    if v > 1:
        if abs(v / 100 - truth) < tol:
            raise Mismatch(f"{v:g} 看起来是百分数：请把比例写成 0 到 1 之间的小数。")
        if abs(v / n - truth) < tol:
            raise Mismatch(f"{v:g} 看起来是粒子个数：请除以 n_particles = {n}。")
        raise Mismatch(f"w_small 是粒子所占的比例，应在 0 到 1 之间；收到的是 {v:g}。")
    if v < 0:
        raise Mismatch(f"w_small 是粒子所占的比例，应在 0 到 1 之间；收到的是 {v:g}。")
    if abs(v - truth) < tol:
        return (f"{v:.3f}，真实权重是 0.1（{n} 个粒子时二项标准误差为 {se:.3f}）：sigma 大时几个峰合在一起，"
                "粒子重新分配；等峰之间的低谷出现时，粒子已经按权重分好了。")
    plain = _basin_share()
    if abs(v - plain) < 4 * math.sqrt(plain * (1 - plain) / n) + B1_SAMPLER_SLACK:
        raise Mismatch(f"{v:.3f} 大约是起始方框里流向小峰的那一部分面积（{plain:.3f}）：这是普通 Langevin（或只用一个"
                       "很小的 sigma）给出的结果。在每个峰附近，分数就是那个高斯分量的分数，完全不含权重的信息；峰之间"
                       "的低谷又太深，粒子越不过去，只能留在出发时所在的吸引域里。请运行退火采样器，且 sigma_1 要与峰"
                       "之间的距离相当。")
    for w, which in ((B1_WEIGHTS[1], "(5, -5) 处的中等峰"), (B1_WEIGHTS[0], "(5, 5) 处的重峰")):
        if abs(v - w) < tol:
            raise Mismatch(f"{v:.3f} 接近{which}的权重；请报告最小峰（(-5, 0) 处，mode_weights 的第 2 个分量）的比例。")
    raise Mismatch(f"{v:.3f} 与真实权重 0.1 相差 {abs(v - truth) / se:.1f} 个二项标准误差（{n} 个粒子时为 {se:.3f}）。"
                   "检查 sigma_1 是否与峰之间的最大距离（约 11）相当、每一级的步数是否足够（T 约 100），"
                   "以及数的是不是 (-5, 0) 处那个峰的粒子。")
