"""Tabular encoder: standardised numerics pass through; each categorical gets a learned embedding."""

from __future__ import annotations

import torch
from torch import nn


def embedding_dim(cardinality: int) -> int:
    """Embedding width for a vocabulary size (the fastai rule of thumb, capped at 32).

    Example:
        >>> embedding_dim(2), embedding_dim(1000)
        (2, 32)
    """
    return max(2, min(32, round(1.6 * cardinality**0.56)))


class TabularEncoder(nn.Module):
    """``(num [B, N], cat [B, C]) -> [B, N + sum(embedding dims)]``; category 0 is the unknown bucket."""

    def __init__(self, n_numeric: int, cardinalities: list[int]) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        self.out_dim = n_numeric + sum(e.embedding_dim for e in self.embeddings)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        parts = [num] + [emb(cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)
