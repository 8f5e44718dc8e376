"""An independent transformer, written from the definition (Nanda et al.'s progress-measures
model; Power et al.'s decoder with pre-LN): no grokexp forward is imported.

The sequence is ``a b =`` with ``=`` the token P; token embedding plus a learned positional
embedding; per block (pre-LN when ``layer_norm``) causal ``nn.MultiheadAttention`` without
biases, then an MLP with biases; a final LayerNorm when ``layer_norm``; an unembedding without
bias, read at the ``=`` position. Dropout is the F.dropout-style product with given keep-masks
(already scaled by 1/(1-p)) at ``embedding`` (after the embeddings), ``attention`` (each
attention output) and ``mlp`` (each MLP's hidden activations).

Only the weights come from grokexp: one member's state dict, whose matmul weights are stored
(in, out) and whose query/key/value columns are the heads side by side.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

Masks = Mapping[str, list[torch.Tensor]]  # site → one keep-mask (N, 3, F) per occurrence


class ReferenceBlock(nn.Module):
    def __init__(self, d: int, heads: int, d_mlp: int, layer_norm: bool, activation: str):
        super().__init__()
        self.ln1 = nn.LayerNorm(d) if layer_norm else None
        self.attn = nn.MultiheadAttention(d, heads, bias=False, batch_first=True)
        self.ln2 = nn.LayerNorm(d) if layer_norm else None
        self.fc_in = nn.Linear(d, d_mlp)
        self.fc_out = nn.Linear(d_mlp, d)
        self.activation = activation

    def load(self, state: Mapping[str, torch.Tensor], prefix: str) -> None:
        a = prefix + "attn."
        self.attn.in_proj_weight.copy_(torch.cat([state[a + "w_q"].T, state[a + "w_k"].T,
                                                  state[a + "w_v"].T]))
        self.attn.out_proj.weight.copy_(state[a + "w_o"].T)
        self.fc_in.weight.copy_(state[prefix + "mlp.w_in"].T)
        self.fc_in.bias.copy_(state[prefix + "mlp.b_in"])
        self.fc_out.weight.copy_(state[prefix + "mlp.w_out"].T)
        self.fc_out.bias.copy_(state[prefix + "mlp.b_out"])
        for name, ln in (("ln1", self.ln1), ("ln2", self.ln2)):
            if ln is not None:
                ln.weight.copy_(state[prefix + name + ".weight"])
                ln.bias.copy_(state[prefix + name + ".bias"])

    def forward(self, x: torch.Tensor, layer: int, masks: Masks | None,
                hooks: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        y = self.ln1(x) if self.ln1 is not None else x
        causal = torch.triu(torch.ones(3, 3, dtype=torch.bool), diagonal=1)  # True: hidden
        out, _ = self.attn(y, y, y, attn_mask=causal, need_weights=False)
        hooks["attention"].append(out)
        if masks is not None:
            out = out * masks["attention"][layer]
        x = x + out
        y = self.ln2(x) if self.ln2 is not None else x
        act = F.relu if self.activation == "relu" else F.gelu
        hidden = act(self.fc_in(y))
        hooks["mlp"].append(hidden)
        if masks is not None:
            hidden = hidden * masks["mlp"][layer]
        return x + self.fc_out(hidden)


class ReferenceTransformer(nn.Module):
    """``run(pairs, masks)`` gives the (N, P) logits and the hooked activations."""

    def __init__(self, p: int, d: int, heads: int, d_mlp: int, layers: int, layer_norm: bool,
                 activation: str = "relu"):
        super().__init__()
        self.p = p
        self.token = nn.Embedding(p + 1, d)
        self.position = nn.Embedding(3, d)
        self.blocks = nn.ModuleList(ReferenceBlock(d, heads, d_mlp, layer_norm, activation)
                                    for _ in range(layers))
        self.ln_final = nn.LayerNorm(d) if layer_norm else None
        self.unembed = nn.Linear(d, p, bias=False)

    @classmethod
    def from_member(cls, state: Mapping[str, torch.Tensor], heads: int, layer_norm: bool,
                    activation: str = "relu") -> ReferenceTransformer:
        p_plus_1, d = state["embedding"].shape
        layers = len({key.split(".")[1] for key in state if key.startswith("blocks.")})
        d_mlp = state["blocks.0.mlp.b_in"].shape[0]
        net = cls(p_plus_1 - 1, d, heads, d_mlp, layers, layer_norm, activation)
        with torch.no_grad():
            net.token.weight.copy_(state["embedding"])
            net.position.weight.copy_(state["positional"])
            for index, block in enumerate(net.blocks):
                block.load(state, f"blocks.{index}.")
            if net.ln_final is not None:
                net.ln_final.weight.copy_(state["ln_final.weight"])
                net.ln_final.bias.copy_(state["ln_final.bias"])
            net.unembed.weight.copy_(state["unembed.weight"].T)
        return net

    def run(self, pairs: torch.Tensor, masks: Masks | None = None
            ) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
        equals = torch.full((pairs.shape[0], 1), self.p, dtype=torch.long)
        sequence = torch.cat([pairs, equals], dim=1)  # (N, 3): a, b, =
        x = self.token(sequence) + self.position(torch.arange(3))
        hooks: dict[str, list[torch.Tensor]] = {"embedding": [x], "attention": [], "mlp": []}
        if masks is not None:
            x = x * masks["embedding"][0]
        for layer, block in enumerate(self.blocks):
            x = block(x, layer, masks, hooks)
        final = x[:, 2]
        if self.ln_final is not None:
            final = self.ln_final(final)
        return self.unembed(final), hooks

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.run(pairs)[0]
