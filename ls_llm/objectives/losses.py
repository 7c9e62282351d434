"""The token objectives: per-token loss and its gradient w.r.t. the logits z.

Notation (per non-ignored token): p = softmax(z), y the target, ℓ_k = lse(z) − z_k = −log p_k,
H(p) = −Σ_k p_k log p_k, e_k the one-hot vector of k. Each gradient below is written in the form
consumed by ``write_grad_``: a coefficient of p, minus coefficients of one-hot vectors and of the prior.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ls_llm.objectives.base import TokenObjective, as_prior, check_range, register
from ls_llm.objectives.softmax import ChunkSoftmax, write_grad_


def _one_minus_p_y(sm: ChunkSoftmax) -> Tensor:
    # 1 − p_y = −expm1(log p_y): exact when p_y is close to 1, where 1 − exp(·) cancels.
    return -torch.expm1(sm.logp_y)


@register("ce")
class CrossEntropy(TokenObjective):
    """Cross-entropy ℓ_y. dℓ_y/dz = p − e_y."""

    def token_loss(self, sm, y, aux):
        return sm.ce

    def token_grad_(self, sm, y, aux, p_extra):
        return write_grad_(sm, y, p_coef=1.0 + p_extra, y_coef=1.0)


@register("label_smoothing")
class LabelSmoothing(TokenObjective):
    """(1−α)·ℓ_y + α·Σ_k π_k ℓ_k (Szegedy et al. 2016; Lukasik et al. 2020; α < 0: Wei et al. 2022).

    Σ_k π_k ℓ_k = lse − π·z, so the loss is lse − (1−α) z_y − α π·z and its gradient is
    p − (1−α) e_y − α π. π is uniform (1/V) or a probability vector of length V.
    """

    PARAMS = {"alpha": 0.1, "prior": "uniform"}

    def validate(self) -> None:
        self.alpha = check_range("alpha", self.params["alpha"], hi=1.0, hi_open=True)
        prior = as_prior(self.params["prior"])
        self.register_buffer("prior", prior, persistent=False)

    def _prior(self, z: Tensor) -> Tensor | None:
        if self.prior is None:
            return None
        if self.prior.numel() != z.shape[1]:
            raise ValueError(f"prior has length {self.prior.numel()} but the vocabulary has {z.shape[1]} tokens")
        return self.prior.to(device=z.device, dtype=z.dtype)

    def pre_softmax(self, z):
        prior = self._prior(z)
        return z.sum(dim=1) / z.shape[1] if prior is None else torch.mv(z, prior)

    def token_loss(self, sm, y, aux):
        return (1.0 - self.alpha) * sm.ce + self.alpha * (sm.lse - aux)

    def token_grad_(self, sm, y, aux, p_extra):
        prior = self._prior(sm.e)
        return write_grad_(sm, y, p_coef=1.0 + p_extra, y_coef=1.0 - self.alpha, prior=prior, prior_coef=self.alpha)


@register("backward_correction")
class BackwardCorrection(LabelSmoothing):
    """Backward correction (Patrini et al. 2017) for the channel "with probability ε the label is replaced by a draw
    from π": T = (1−ε)I + ε·1πᵀ, T⁻¹ = I/(1−ε) − (ε/(1−ε))·1πᵀ (Sherman–Morrison), so the corrected loss is
    ℓ_y/(1−ε) − (ε/(1−ε))·Σ_k π_k ℓ_k: label smoothing with α = −ε/(1−ε) and the same prior (Lukasik et al. 2020).
    π uniform (1/V) is symmetric noise; `prior` a length-V vector (e.g. the answer tokens' frequencies) is noise
    drawn from that distribution."""

    PARAMS = {"noise_rate": 0.1, "prior": "uniform"}

    def validate(self) -> None:
        eps = check_range("noise_rate", self.params["noise_rate"], lo=0.0, hi=1.0, hi_open=True)
        self.alpha = -eps / (1.0 - eps)
        self.register_buffer("prior", as_prior(self.params["prior"]), persistent=False)


@register("forward_correction")
class ForwardCorrection(TokenObjective):
    """−log((1−ε)·p_y + ε·π_y) (Patrini et al. 2017), the likelihood of y under the noisy channel "with probability
    ε the label is replaced by a draw from π"; π uniform (ε/V, symmetric noise) or a length-V `prior`.

    With q = (1−ε)p_y + ε·π_y and dp_y/dz = p_y(e_y − p): the gradient is s·(p − e_y), s = (1−ε)p_y/q (π_y does
    not depend on z).
    """

    PARAMS = {"noise_rate": 0.1, "prior": "uniform"}

    def validate(self) -> None:
        self.eps = check_range("noise_rate", self.params["noise_rate"], lo=0.0, hi=1.0, hi_open=True)
        self.register_buffer("prior", as_prior(self.params["prior"]), persistent=False)

    def _log_clean_and_q(self, sm: ChunkSoftmax, y: Tensor) -> tuple[Tensor, Tensor]:
        log_clean = sm.logp_y + math.log1p(-self.eps)
        if self.eps == 0.0:
            return log_clean, log_clean
        vocab = sm.e.shape[1]
        if self.prior is None:
            log_noise = torch.full_like(log_clean, math.log(self.eps / vocab))
        else:
            if self.prior.numel() != vocab:
                raise ValueError(f"prior has length {self.prior.numel()} but the vocabulary has {vocab} tokens")
            log_noise = torch.log(self.eps * self.prior.to(device=y.device, dtype=log_clean.dtype)[y])
        return log_clean, torch.logaddexp(log_clean, log_noise)

    def token_loss(self, sm, y, aux):
        return -self._log_clean_and_q(sm, y)[1]

    def token_grad_(self, sm, y, aux, p_extra):
        log_clean, log_q = self._log_clean_and_q(sm, y)
        s = torch.exp(log_clean - log_q)
        return write_grad_(sm, y, p_coef=s + p_extra, y_coef=s)


@register("gce")
class GeneralizedCrossEntropy(TokenObjective):
    """(1 − p_y^q)/q (Zhang & Sabuncu 2018); q → 0 is CE, q = 1 is MAE. Gradient p_y^q·(p − e_y)."""

    PARAMS = {"q": 0.7}

    def validate(self) -> None:
        self.q = check_range("q", self.params["q"], lo=0.0, hi=1.0, lo_open=True)

    def token_loss(self, sm, y, aux):
        return -torch.expm1(self.q * sm.logp_y) / self.q

    def token_grad_(self, sm, y, aux, p_extra):
        s = torch.exp(self.q * sm.logp_y)
        return write_grad_(sm, y, p_coef=s + p_extra, y_coef=s)


@register("sce")
class SymmetricCrossEntropy(TokenObjective):
    """α·ℓ_y − β·A·(1 − p_y) with A = log_zero < 0, the clipped log 0 of reverse CE (Wang et al. 2019).

    d(1 − p_y)/dz = p_y(p − e_y), so the gradient is (α − β·A·p_y)·(p − e_y).
    """

    PARAMS = {"alpha": 0.1, "beta": 1.0, "log_zero": -4.0}

    def validate(self) -> None:
        self.alpha = check_range("alpha", self.params["alpha"], lo=0.0)
        self.beta = check_range("beta", self.params["beta"], lo=0.0)
        self.log_zero = check_range("log_zero", self.params["log_zero"], hi=0.0, hi_open=True)

    def token_loss(self, sm, y, aux):
        return self.alpha * sm.ce - self.beta * self.log_zero * _one_minus_p_y(sm)

    def token_grad_(self, sm, y, aux, p_extra):
        s = self.alpha - self.beta * self.log_zero * sm.p_y
        return write_grad_(sm, y, p_coef=s + p_extra, y_coef=s)


@register("bootstrap_soft")
class BootstrapSoft(TokenObjective):
    """β·ℓ_y + (1−β)·H(p) (Reed et al. 2015, soft bootstrapping).

    dH/dz = −p ⊙ (log p + H), so the gradient is p ⊙ (β − (1−β)(log p + H)) − β e_y.
    """

    PARAMS = {"beta": 0.95}
    NEEDS_LOGP = True

    def validate(self) -> None:
        self.beta = check_range("beta", self.params["beta"], lo=0.0, hi=1.0)

    def token_loss(self, sm, y, aux):
        return self.beta * sm.ce + (1.0 - self.beta) * sm.entropy

    def token_grad_(self, sm, y, aux, p_extra):
        g = sm.logp  # reuse the log p buffer for the gradient
        shift = self.beta + p_extra - (1.0 - self.beta) * sm.entropy
        g.mul_(-(1.0 - self.beta)).add_(torch.as_tensor(shift, device=g.device, dtype=g.dtype).expand(g.shape[0])[:, None])
        g.mul_(sm.e).mul_(sm.inv_s[:, None])
        g.index_put_((sm.rows(), y), torch.full_like(sm.m, -self.beta), accumulate=True)
        return g


@register("bootstrap_hard")
class BootstrapHard(TokenObjective):
    """β·ℓ_y + (1−β)·ℓ_m with m = argmax p, not differentiated (Reed et al. 2015, hard bootstrapping).

    ℓ_m = lse − max z. Gradient: p − β e_y − (1−β) e_m.
    """

    PARAMS = {"beta": 0.8}

    def validate(self) -> None:
        self.beta = check_range("beta", self.params["beta"], lo=0.0, hi=1.0)

    def pre_softmax(self, z):
        return z.argmax(dim=1)

    def token_loss(self, sm, y, aux):
        return self.beta * sm.ce + (1.0 - self.beta) * (sm.lse - sm.m)

    def token_grad_(self, sm, y, aux, p_extra):
        return write_grad_(sm, y, p_coef=1.0 + p_extra, y_coef=self.beta, extra_index=aux, extra_coef=1.0 - self.beta)


@register("dft")
class DynamicFineTuning(TokenObjective):
    """sg(p_y)·ℓ_y (dynamic fine-tuning, Wu et al. 2025): CE reweighted by the detached target probability."""

    def token_loss(self, sm, y, aux):
        return sm.p_y * sm.ce

    def token_grad_(self, sm, y, aux, p_extra):
        s = sm.p_y
        return write_grad_(sm, y, p_coef=s + p_extra, y_coef=s)


@register("focal")
class Focal(TokenObjective):
    """(1 − p_y)^γ·ℓ_y (Lin et al. 2017).

    With u = 1 − p_y and du/dz = p_y(p − e_y):
    d/dz = [u^γ + γ·u^(γ−1)·p_y·ℓ_y]·(p − e_y). As p_y → 1, ℓ_y ≈ u, so the second term → γ·u^γ → 0;
    it is set to 0 where u = 0 exactly (where u^(γ−1) would be inf for γ < 1).
    """

    PARAMS = {"gamma": 2.0}

    def validate(self) -> None:
        self.gamma = check_range("gamma", self.params["gamma"], lo=0.0)

    def token_loss(self, sm, y, aux):
        return _one_minus_p_y(sm).pow(self.gamma) * sm.ce

    def token_grad_(self, sm, y, aux, p_extra):
        u = _one_minus_p_y(sm)
        second = self.gamma * sm.p_y * sm.ce * u.pow(self.gamma - 1.0)
        second = torch.where(u > 0, second, torch.zeros_like(second))
        s = u.pow(self.gamma) + second
        return write_grad_(sm, y, p_coef=s + p_extra, y_coef=s)

