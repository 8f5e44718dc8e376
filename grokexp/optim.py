"""AdamW over stacked parameters, with a learning rate and weight decay per member.

The update is torch.optim.AdamW's, term for term (decoupled decay, bias correction as there),
so a population of one matches the textbook optimiser; ``lr``, ``weight_decay`` and
``trainable`` are (K,) tensors broadcast over each parameter's trailing axes.
"""

from __future__ import annotations

import torch

__all__ = ["PopulationAdamW"]


class PopulationAdamW:
    """Adam moments per parameter, updated in place; frozen members' layers never move."""

    def __init__(self, params: dict[str, torch.Tensor], lr: torch.Tensor,
                 weight_decay: torch.Tensor, trainable: dict[str, torch.Tensor],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr, self.weight_decay, self.trainable = lr, weight_decay, trainable
        self.betas, self.eps = betas, eps
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}

    def _per_member(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        beta1, beta2 = self.betas
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = (1 - beta2**self.step_count) ** 0.5
        for name, param in self.params.items():
            grad = param.grad
            if grad is None:
                continue
            lr = self._per_member(self.lr * self.trainable[name], param)
            wd = self._per_member(self.weight_decay, param)
            param.mul_(1 - lr * wd)
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            param.sub_(lr / bias1 * m / denom)

    def zero_grad(self) -> None:
        for param in self.params.values():
            param.grad = None

    def select(self, keep: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
        """Follow Population.select: keep those members' moments and settings."""
        self.params = params
        self.lr, self.weight_decay = self.lr[keep], self.weight_decay[keep]
        self.trainable = {n: t[keep] for n, t in self.trainable.items()}
        self.exp_avg = {n: t[keep] for n, t in self.exp_avg.items()}
        self.exp_avg_sq = {n: t[keep] for n, t in self.exp_avg_sq.items()}

    def state_dict(self, cpu: bool = False) -> dict[str, object]:
        """Step count and moments (copied to the CPU with ``cpu=True``, for checkpoints)."""
        def own(t: torch.Tensor) -> torch.Tensor:
            return t.detach().cpu().clone() if cpu else t
        return {"step": self.step_count,
                "exp_avg": {n: own(t) for n, t in self.exp_avg.items()},
                "exp_avg_sq": {n: own(t) for n, t in self.exp_avg_sq.items()},
                "lr": own(self.lr), "weight_decay": own(self.weight_decay)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the step count and moments of :meth:`state_dict` (same members, same order).

        ``lr`` and ``weight_decay`` come from the members' specs and are not overwritten.
        """
        self.step_count = int(state["step"])  # type: ignore[call-overload]
        for name, moments in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
            saved: dict[str, torch.Tensor] = state[name]  # type: ignore[assignment]
            for key, target in moments.items():
                moments[key] = saved[key].to(device=target.device, dtype=target.dtype).clone()
