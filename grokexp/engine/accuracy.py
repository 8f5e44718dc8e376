"""Accuracy and loss: the numbers every run reports (grok epochs: grokexp.grokking)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["accuracy_and_loss"]


def accuracy_and_loss(logits: torch.Tensor, labels: torch.Tensor,
                      train_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-member train/test accuracy and mean cross-entropy over the whole pair table.

    logits (K, N, P); labels (N,); train_mask (K, N) bool, True for that member's train pairs.
    Returns ``train_acc``, ``test_acc``, ``train_loss``, ``test_loss``, each (K,).
    """
    k, n, p = logits.shape
    correct = (logits.argmax(-1) == labels).float()  # (K, N)
    loss = F.cross_entropy(logits.reshape(k * n, p), labels.repeat(k),
                           reduction="none").view(k, n)  # (K, N)
    train = train_mask.float()
    test = 1.0 - train
    n_train, n_test = train.sum(1), test.sum(1)
    return {
        "train_acc": (correct * train).sum(1) / n_train,
        "test_acc": (correct * test).sum(1) / n_test,
        "train_loss": (loss * train).sum(1) / n_train,
        "test_loss": (loss * test).sum(1) / n_test,
    }
