"""Conditional scores and classifier guidance on a labelled Gaussian mixture (section 4.6.1).

A conditional score model needs ``grad_x log p_t(x | y)`` for a label ``y``.  Two routes:

- model it directly, ``s_theta(x, y, t)`` (a label-conditioned network);
- *classifier guidance* (Dhariwal & Nichol 2021; Song et al. 2021, section I): by Bayes,
  ``p_t(x | y) = p_t(x) p_t(y | x) / p(y)`` and ``p(y)`` does not depend on x, so::

      grad_x log p_t(x | y) = grad_x log p_t(x) + grad_x log p_t(y | x).

  The unconditional score plus the gradient of a *noisy* classifier ``p_t(y | x)``.  With a
  guidance scale ``w`` the sampler follows ``grad log p_t(x) + w grad log p_t(y | x)``, the
  score of the "tilted" law ``p_t(x) p_t(y | x)^w`` (up to normalisation); ``w = 1`` is exact,
  ``w > 1`` sharpens towards regions the classifier is sure about.

On a ``LabelledMixture`` (a ``GaussianMixture`` whose every component carries a class) all of
this is exact at every time of a linear SDE: ``p_t(x | y)`` is the mixture of the class's
components with renormalised weights, and ``p_t(y | x)`` is the sum of the posterior
component probabilities of the class's components.

Shapes: points are (N, d); a label is an int or an (N,) integer tensor; ``t`` is a number or
an (N,) tensor; scores are (N, d), log-posteriors (N, C).
"""

from __future__ import annotations

import math

import torch

from ._checks import (
    as_points,
    check_callable,
    check_finite,
    check_generator,
    check_index,
    check_output,
    check_times,
    check_type,
    per_example_labels,
)
from .distributions import GaussianMixture, diffused_logits
from .sdes import SDE, exact_score_fn

__all__ = [
    "LabelledMixture",
    "two_class_toy",
    "conditional_score_fn",
    "classifier_grad_fn",
    "guided_score",
]

_LOG_2PI = math.log(2 * math.pi)


_SDE_TYPES = "a scorelab SDE (VPSDE, VESDE, SubVPSDE)"
_SCALE = "a number (the guidance scale)"


class LabelledMixture:
    """A Gaussian mixture with a class label on every component (section 4.6.1).

    Args:
        mixture: a ``GaussianMixture`` with K components and isotropic covariances.
        labels: (K,) integers in ``0 .. C-1``, the class of each component; every class needs
            at least one component.

    The class prior is ``p(y = c) = sum_{k: label_k = c} w_k``; the class-conditional law is
    the sub-mixture of class c with weights ``w_k / p(c)`` (``class_mixture(c)``).
    """

    def __init__(self, mixture: GaussianMixture, labels):
        check_type(mixture, GaussianMixture, "mixture", "a scorelab GaussianMixture")
        if not mixture._isotropic:
            raise ValueError("mixture: expected isotropic component covariances (var_k I)")
        lab = torch.as_tensor(labels)
        if lab.is_floating_point() or lab.dtype == torch.bool:
            raise TypeError(f"labels: expected integers, got dtype {lab.dtype}")
        K = mixture.n_components
        if lab.shape != (K,):
            raise ValueError(f"labels: expected shape ({K},), one class per component, got {tuple(lab.shape)}")
        if bool((lab < 0).any()):
            raise ValueError("labels: expected non-negative class indices")
        lab = lab.long()
        C = int(lab.max()) + 1
        missing = sorted(set(range(C)) - set(lab.tolist()))
        if missing:
            raise ValueError(f"labels: classes {missing} have no component; use classes 0 .. C-1")
        self.mixture, self.labels, self.n_classes, self.dim = mixture, lab, C, mixture.dim
        m = mixture._p.master
        self._logw, self._means, self._var = m["log_weights"], m["means"], m["var"]
        self._onehot = torch.nn.functional.one_hot(lab, C).to(torch.float64)  # (K, C)

    # -- the class structure ---------------------------------------------------------
    @property
    def class_prior(self) -> torch.Tensor:
        """(C,) class probabilities ``p(y = c)``, float64."""
        return torch.exp(self._logw) @ self._onehot

    def class_mixture(self, y: int) -> GaussianMixture:
        """The class-conditional law ``p(x | y)``: the class's components, weights renormalised."""
        y = check_index(y, self.n_classes, "y", "a class index")
        idx = self.labels == y
        out = GaussianMixture(torch.exp(self._logw[idx]), self._means[idx], self._var[idx])
        out.dtype = self.mixture.dtype
        return out

    def sample(self, n: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` pairs ``(x, y)`` from the joint law: x (n, d), y (n,) long."""
        x, k = self.mixture.sample_with_labels(n, generator=check_generator(generator))
        return x, self.labels[k]

    def sample_class(self, y: int, n: int, generator=None) -> torch.Tensor:
        """Draw ``n`` exact samples of ``p(x | y)``: (n, d)."""
        return self.class_mixture(y).sample(n, generator=generator)

    # -- exact noisy posteriors --------------------------------------------------------
    def _logits(self, x: torch.Tensor, t, sde: SDE | None):
        """Per-component log joint ``log w_k + log N(x; a m_k, v_k I)`` (N, K), its x-gradient
        (N, K, d), for the marginal ``p_t`` (``sde=None``: the data law, t = 0)."""
        x = as_points(x, self.dim)
        if sde is None:
            a = torch.ones(x.shape[0], dtype=x.dtype)
            s = torch.zeros_like(a)
        else:
            tt = check_times(t, x, check_type(sde, SDE, "sde", _SDE_TYPES).T)
            a, s = sde.alpha(tt), sde.sigma(tt)
        means, var, logw = (v.to(x.dtype) for v in (self._means, self._var, self._logw))
        logits, v = diffused_logits(x, logw, means, (means * means).sum(-1), var, a, s)  # (N, K)
        diff = x[:, None, :] - a[:, None, None] * means  # (N, K, d)
        return logits - 0.5 * self.dim * _LOG_2PI, -diff / v[..., None]

    def log_prob(self, x: torch.Tensor, t=0.0, sde: SDE | None = None) -> torch.Tensor:
        """``log p_t(x)``: (N, d) -> (N,).  ``sde=None`` gives the data law (t ignored)."""
        logits, _ = self._logits(x, t, sde)
        return torch.logsumexp(logits, -1)

    def log_class_posterior(self, x: torch.Tensor, t=0.0, sde: SDE | None = None) -> torch.Tensor:
        """``log p_t(y = c | x)`` for every class, the exact noisy classifier: (N, d) -> (N, C).

        ``p_t(c | x) = sum_{k in c} w_k N_k,t(x) / sum_k w_k N_k,t(x)`` with the components
        ``N_k,t = N(alpha m_k, (alpha^2 var_k + sigma^2) I)`` of ``p_t``.  ``sde=None``: t = 0.
        """
        logits, _ = self._logits(x, t, sde)
        masked = logits[:, :, None] + torch.log(self._onehot.to(logits.dtype))[None]  # (N, K, C)
        return torch.logsumexp(masked, 1) - torch.logsumexp(logits, -1, keepdim=True)

    def tilted_log_prob(self, x: torch.Tensor, y: int, w: float) -> torch.Tensor:
        """Unnormalised ``log p(x) + w log p(y | x)`` at t = 0, the law that guidance scale w
        aims at (``w = 1``: ``log p(x | y) + log p(y)``; ``w = 0``: ``log p(x)``).  (N, d) -> (N,)."""
        y = check_index(y, self.n_classes, "y", "a class index")
        w = check_finite(w, "w", _SCALE)
        return self.log_prob(x) + w * self.log_class_posterior(x)[:, y]

    def __repr__(self) -> str:
        return f"LabelledMixture(n_components={self.mixture.n_components}, n_classes={self.n_classes}, dim={self.dim})"


def two_class_toy(std: float = 0.6) -> LabelledMixture:
    """The 2-D toy of section 4.6.1: four equal components, two classes.

    Class 0: an isolated component at (-3, 0) and one at (0, 0.7); class 1 mirrors it, (3, 0)
    and (0, -0.7).  The two central components overlap, so there the classifier is unsure.
    """
    means = torch.tensor([[-3.0, 0.0], [0.0, 0.7], [3.0, 0.0], [0.0, -0.7]])
    return LabelledMixture(GaussianMixture.isotropic(torch.ones(4) / 4, means, std), [0, 0, 1, 1])


def conditional_score_fn(sde: SDE, lmix: LabelledMixture, y):
    """Exact conditional score ``grad_x log p_t(x | y)`` under ``sde`` (section 4.6.1).

    ``p_t(x | y)`` is the diffused class sub-mixture, so this is ``exact_score_fn`` on
    ``lmix.class_mixture(c)``.  ``y``: an int (one class for all points) or an (N,) tensor of
    labels fixed at construction.  Returns ``score_fn(x (N, d), t) -> (N, d)``.
    """
    check_type(sde, SDE, "sde", _SDE_TYPES)
    check_type(lmix, LabelledMixture, "lmix", "a LabelledMixture")
    per_class = [exact_score_fn(sde, lmix.class_mixture(c)) for c in range(lmix.n_classes)]
    if not (isinstance(y, torch.Tensor) and y.ndim > 0):
        c = check_index(int(y) if isinstance(y, torch.Tensor) else y, lmix.n_classes, "y", "a class index")
        return per_class[c]
    labels = per_example_labels(y, y.shape[0], lmix.n_classes)

    def score_fn(x: torch.Tensor, t) -> torch.Tensor:
        x = as_points(x, lmix.dim)
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"x: expected {labels.shape[0]} points to match the labels, got {x.shape[0]}")
        tt = check_times(t, x, sde.T)
        out = torch.empty_like(x)
        for c in labels.unique().tolist():
            idx = labels == c
            out[idx] = per_class[c](x[idx], tt[idx])
        return out

    return score_fn


def classifier_grad_fn(sde: SDE, lmix: LabelledMixture, y):
    """Gradient of the exact noisy classifier, ``grad_x log p_t(y | x)`` (section 4.6.1).

    Closed form: with component posteriors ``r_k = p_t(k | x)`` and, inside the class,
    ``r_k|y = r_k / sum_{j in y} r_j``, and ``g_k = -(x - alpha m_k) / v_k`` the gradient of
    component k's log-density::

        grad_x log p_t(y | x) = sum_{k in y} r_k|y g_k - sum_k r_k g_k

    (the conditional minus the unconditional score, which is the Bayes identity; this code
    never calls them).  ``y``: an int or an (N,) label tensor.  Returns
    ``grad_fn(x (N, d), t) -> (N, d)``.
    """
    check_type(sde, SDE, "sde", _SDE_TYPES)
    check_type(lmix, LabelledMixture, "lmix", "a LabelledMixture")
    if not (isinstance(y, torch.Tensor) and y.ndim > 0):
        check_index(int(y) if isinstance(y, torch.Tensor) else y, lmix.n_classes, "y", "a class index")
    onehot = lmix._onehot

    def grad_fn(x: torch.Tensor, t) -> torch.Tensor:
        x = as_points(x, lmix.dim)
        logits, g = lmix._logits(x, t, sde)  # (N, K), (N, K, d)
        labels = per_example_labels(y, x.shape[0], lmix.n_classes)
        member = onehot.to(x.dtype)[:, labels].T  # (N, K): 1 where component k is in y_n
        r = torch.softmax(logits, -1)
        r_y = torch.softmax(logits + torch.log(member), -1)
        return ((r_y - r)[..., None] * g).sum(1)

    return grad_fn


def guided_score(uncond_fn, classifier_grad_fn, w: float):
    """Classifier guidance with scale w: ``s(x, t) + w grad log p_t(y | x)`` (section 4.6.1).

    ``w = 1`` gives the conditional score, ``w = 0`` the unconditional one, ``w > 1`` the score
    of the sharpened law ``p_t(x) p_t(y | x)^w`` (unnormalised).  Both arguments are
    ``(x (N, d), t) -> (N, d)`` callables; returns one of the same kind.
    """
    check_callable(uncond_fn, "uncond_fn", "(x (N, d), t) -> (N, d)")
    check_callable(classifier_grad_fn, "classifier_grad_fn", "(x (N, d), t) -> (N, d)")
    w = check_finite(w, "w", _SCALE)

    def score_fn(x: torch.Tensor, t) -> torch.Tensor:
        s = uncond_fn(x, t)
        if w == 0:
            return s
        g = check_output(classifier_grad_fn(x, t), s.shape, "classifier_grad_fn")
        return s + w * g.to(s.dtype)

    score_fn.w = w
    return score_fn
