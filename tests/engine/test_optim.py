from __future__ import annotations

import torch

from grokexp.engine.optim import PopulationAdamW


def test_matches_torch_adamw_per_member_with_own_lr_and_decay():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 5, 4, generator=gen)
    grads = [torch.randn(3, 5, 4, generator=gen) for _ in range(6)]
    lrs, wds = [1e-2, 3e-3, 1e-1], [1.0, 0.0, 0.3]
    stacked = {"w": start.clone().requires_grad_(True)}
    opt = PopulationAdamW(stacked, torch.tensor(lrs), torch.tensor(wds),
                          {"w": torch.ones(3)}, betas=(0.9, 0.98))
    refs = []
    for k in range(3):
        p = start[k].clone().requires_grad_(True)
        refs.append((p, torch.optim.AdamW([p], lr=lrs[k], weight_decay=wds[k],
                                          betas=(0.9, 0.98))))
    for g in grads:
        stacked["w"].grad = g.clone()
        opt.step()
        for k, (p, ref) in enumerate(refs):
            p.grad = g[k].clone()
            ref.step()
    for k, (p, _) in enumerate(refs):
        torch.testing.assert_close(stacked["w"][k], p, rtol=1e-5, atol=1e-6)


def test_frozen_member_layer_does_not_move():
    w = torch.ones(2, 3).requires_grad_(True)
    opt = PopulationAdamW({"w": w}, torch.tensor([0.1, 0.1]), torch.tensor([1.0, 1.0]),
                          {"w": torch.tensor([1.0, 0.0])})
    w.grad = torch.ones(2, 3)
    opt.step()
    assert torch.all(w[1] == 1.0) and torch.all(w[0] < 1.0)
