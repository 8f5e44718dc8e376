"""The architectures the diagnostics are checked on, each with its plain reference.

Each case gives grokexp's architecture at tiny sizes, random stacked weights for K members
(some ReLU units pushed dead by a bias of -50, so the inactive count has something to find),
and, for one member, an independent plain ``nn.Module`` (``tests/reference.py``'s PaperMLP,
``tests/arch/reference_*.py``) run with given keep-masks. The order in which a pass's masks
are drawn is written here from each architecture's definition (the MLP: the concatenated
embedding, then each hidden layer; the transformer: the embeddings, then per block its
attention output and its MLP's hidden units, all three positions; the one-hot MLP: each
hidden layer), not read from grokexp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from arch.reference_onehot import ReferenceOneHotMlp
from arch.reference_transformer import ReferenceTransformer
from reference import PaperMLP

from grokexp.engine.arch.base import Architecture
from grokexp.engine.arch.mlp import MlpArch
from grokexp.engine.arch.onehot_mlp import OneHotMlpArch
from grokexp.engine.arch.transformer import TransformerArch

P = 7
Masks = dict[str, list[torch.Tensor]]  # site → one (N, ...) keep-mask per occurrence
# pairs (N, 2) and masks (None: no dropout) → logits (N, P) and the activations at the ReLU
# sites, one (N, ..., F) tensor per layer
Run = Callable[[torch.Tensor, Masks | None], tuple[torch.Tensor, list[torch.Tensor]]]


@dataclass(frozen=True)
class Case:
    arch: Architecture
    order: Callable[[int], list[tuple[str, tuple[int, ...]]]]  # a pass's masks, in draw order
    reference: Callable[[Mapping[str, torch.Tensor]], Run]  # one member's plain network
    embedding: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]  # one member's (P, d)


def _mlp(state: Mapping[str, torch.Tensor]) -> Run:
    """PaperMLP's layers, with the masks multiplied in where F.dropout would act."""
    net = PaperMLP.from_state(state)
    return lambda pairs, masks: _mlp_run(net, pairs, masks)


def _mlp_run(net: PaperMLP, pairs: torch.Tensor,
             masks: Masks | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = torch.cat([net.embed(pairs[:, 0]), net.embed(pairs[:, 1])], dim=1)
    if masks is not None:
        x = x * masks["embedding"][0]
    hidden = []
    for index, layer in enumerate(net.hidden):
        x = F.relu(layer(x))
        hidden.append(x)
        if masks is not None:
            x = x * masks["hidden"][index]
    return net.output(x), hidden


def mlp_case() -> Case:
    d, widths = 6, (12, 10)
    return Case(MlpArch(P, d, widths, "relu", "none"),
                lambda n: [("embedding", (n, 2 * d)), *(("hidden", (n, w)) for w in widths)],
                _mlp, lambda state: state["embedding"])


def transformer_case(layers: int = 1, layer_norm: bool = False,
                     activation: str = "relu") -> Case:
    d, heads, d_mlp = 16, 2, 24

    def reference(state: Mapping[str, torch.Tensor]) -> Run:
        net = ReferenceTransformer.from_member(state, heads, layer_norm, activation)

        def run(pairs: torch.Tensor, masks: Masks | None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
            logits, hooks = net.run(pairs, masks)
            return logits, hooks["mlp"]

        return run

    def order(n: int) -> list[tuple[str, tuple[int, ...]]]:
        block = [("attention", (n, 3, d)), ("mlp", (n, 3, d_mlp))]
        return [("embedding", (n, 3, d)), *(block * layers)]

    return Case(TransformerArch(P, d, heads, d_mlp, layers, layer_norm, activation), order,
                reference,
                lambda state: state["embedding"][:P])  # the "=" row is no operand


def onehot_case() -> Case:
    widths = (16, 12)

    def reference(state: Mapping[str, torch.Tensor]) -> Run:
        net = ReferenceOneHotMlp.from_member(state)
        return lambda pairs, masks: net.run(pairs, None if masks is None else masks["hidden"])

    def embedding(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        w = state["hidden.0.weight"]  # (2P, H): rows P.. read the right operand
        return torch.cat([w[:P], w[P:]], dim=1)

    return Case(OneHotMlpArch(P, widths), lambda n: [("hidden", (n, w)) for w in widths],
                reference,
                embedding)


CASES: dict[str, Callable[[], Case]] = {
    "mlp": mlp_case,
    "transformer": transformer_case,
    "transformer_2_layers_ln": lambda: transformer_case(2, True),
    "onehot_mlp": onehot_case,
}


def random_params(arch: Architecture, k: int, seed: int) -> dict[str, torch.Tensor]:
    """K members' weights, O(1) pre-activations; the first two units of every ReLU layer's
    bias at -50 (dead on every input)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for p in arch.layout():
        noise = torch.randn((k, *p.shape), generator=gen)
        if p.constant is not None:  # LayerNorm: around its constant
            out[p.name] = p.constant + 0.2 * noise
        else:
            out[p.name] = noise * (1.5 / p.fan_in**0.5 if not p.is_bias else 0.3)
        if p.is_bias and (p.name.startswith("hidden.") or p.name.endswith("mlp.b_in")):
            out[p.name][:, :2] = -50.0
    return out


def member(params: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    return {name: t[k] for name, t in params.items()}


def member_pairs(k: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each member's own n distinct pairs: left, right, labels (a + b) mod P, each (K, n)."""
    rows = torch.stack([torch.randperm(P * P, generator=torch.Generator().manual_seed(seed + m))
                        [:n] for m in range(k)])
    left, right = rows // P, rows % P
    return left, right, (left + right) % P
