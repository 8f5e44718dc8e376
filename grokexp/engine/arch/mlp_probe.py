"""The paper MLP's dropout passes for the probes, fast: what ``MlpArch.dropout_passes`` runs.

The probes (``diagnostics/metrics/dropout.py``) score M dropout passes of every member,
chunk after chunk of c passes, with keep-masks they draw themselves. Any architecture can do
this through its ``forward`` with the c passes laid out as ``(K, c·N, 2)`` pairs; this path
gives the same values for the paper's MLP (bitwise its own, within float rounding of the
forward's) about twice as fast:

- without the embedding site, the first layer is computed once per member (the gather-and-add
  of ``first_preactivation``) and shared by its passes, scaled into each chunk's buffer;
- with it, the concatenated embedding rows are gathered once and scaled once per rate;
- every chunk writes into the same buffers, allocated once at the widest chunk and viewed as
  a prefix for a shorter last one: a fresh multi-megabyte tensor per op costs page faults and
  copies comparable to the chunk's matmuls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

import torch

from .base import Forward

__all__ = ["MlpDropoutPasses"]


class _Mlp(Protocol):
    """What this path reads of ``MlpArch`` (which imports this module, so not the class)."""

    @property
    def modulus(self) -> int: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def hidden(self) -> tuple[int, ...]: ...
    @property
    def activation(self) -> str: ...
    @property
    def sites(self) -> tuple[str, ...]: ...

    def forward(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                masks: None = None, record: Collection[str] = ()) -> Forward: ...

    def token_embedding(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor: ...


def _view(buffer: torch.Tensor, *shape: int) -> torch.Tensor:
    return buffer[: math.prod(shape)].view(shape)


class MlpDropoutPasses:
    """Logits of chunks of up to ``chunk`` dropout passes of every member over its ``pairs``.

    Call it with one chunk's keep-masks (1.0 kept, 0.0 dropped; one (K, c, N, F) tensor per
    mask of ``arch.mask_shapes(N)`` at a chosen site, in that order) and the survivors'
    scale 1/(1 − rate) of each of its c passes; it returns (K, c·N, P) logits, pass-major.
    The returned tensor is a buffer the next call overwrites.
    """

    def __init__(self, arch: _Mlp, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                 sites: Collection[str], chunk: int,
                 activate: Callable[[str, torch.Tensor], torch.Tensor]):
        """``activate`` is ``mlp.activate_``: the hidden activation in place where it can."""
        unknown = set(sites) - set(arch.sites)
        if unknown:
            raise ValueError(f"not a dropout site of mlp: {', '.join(sorted(unknown))}")
        self.arch, self.params, self.activate = arch, params, activate
        self.embedding_site, self.hidden_site = "embedding" in sites, "hidden" in sites
        k, n, _ = pairs.shape
        self.k, self.n = k, n
        like = params["output.weight"]

        def flat(width: int) -> torch.Tensor:
            return torch.empty(k * chunk * n * width, dtype=like.dtype, device=like.device)

        self.x = flat(2 * arch.embedding_dim)
        self.hidden = [flat(h) for h in arch.hidden]
        self.scores = flat(arch.modulus)
        if self.embedding_site:
            emb = arch.token_embedding(params)  # (K, P, d), after the embedding activation
            d = emb.shape[2]
            left, right = pairs[..., 0], pairs[..., 1]
            index = torch.cat([left, right], dim=1)[..., None].expand(-1, -1, d)  # (K, 2N, d)
            rows = torch.gather(emb, 1, index)
            self.inputs = torch.cat([rows[:, :n], rows[:, n:]], dim=2)  # (K, N, 2d)
        else:
            # the first hidden layer before dropout, once: (K, N, H)
            self.shared = arch.forward(params, pairs, record=("hidden",)).activations["hidden"][0]
        # the embedding rows times 1/(1 − rate), kept while the chunks' scales stay the same
        self._scaled_by: torch.Tensor | None = None
        self._scaled = torch.empty(0)

    def __call__(self, keeps: Sequence[torch.Tensor], scales: torch.Tensor) -> torch.Tensor:
        arch, params, k, n = self.arch, self.params, self.k, self.n
        c = int(scales.shape[0])
        scale = scales.view(1, c, 1, 1)
        masks = iter(keeps)
        if self.embedding_site:
            if self._scaled_by is None or not torch.equal(self._scaled_by, scales):
                # the survivors' scale before the mask (x·s·keep, bitwise x·(keep·s));
                # consecutive chunks of one rate share it
                self._scaled_by, self._scaled = scales, self.inputs[:, None] * scale
            scaled = self._scaled  # (K, c, N, 2d)
            x = torch.mul(scaled, next(masks), out=_view(self.x, *scaled.shape))
            h = torch.baddbmm(params["hidden.0.bias"][:, None, :], x.view(k, c * n, -1),
                              params["hidden.0.weight"],
                              out=_view(self.hidden[0], k, c * n, arch.hidden[0]))
            h = self.activate(arch.activation, h)  # (K, c·N, H)
        elif self.hidden_site:  # the shared first layer, scaled into this chunk's buffer
            h = torch.mul(self.shared[:, None], scale,
                          out=_view(self.hidden[0], k, c, n, arch.hidden[0]))
        else:
            h = self.shared[:, None].expand(k, c, n, self.shared.shape[2])
        h = h.reshape(k, c * n, -1)
        for layer in range(len(arch.hidden)):
            if layer > 0:
                h = torch.baddbmm(params[f"hidden.{layer}.bias"][:, None, :], h,
                                  params[f"hidden.{layer}.weight"],
                                  out=_view(self.hidden[layer], k, c * n, arch.hidden[layer]))
                h = self.activate(arch.activation, h)
            if self.hidden_site:  # h is this chunk's own buffer
                survivors = h.view(k, c, n, -1)
                if layer > 0 or self.embedding_site:  # (else scaled when copied above)
                    survivors.mul_(scale)
                h = survivors.mul_(next(masks)).view(k, c * n, -1)
        return torch.baddbmm(params["output.bias"][:, None, :], h, params["output.weight"],
                             out=_view(self.scores, k, c * n, arch.modulus))
