"""Categorical encoder: a learned embedding per column; category 0 is the unknown bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hone.models.encoders import register


def embedding_dim(cardinality: int) -> int:
    """Embedding width for a vocabulary size (the fastai rule of thumb, capped at 32).

    Example:
        >>> embedding_dim(2), embedding_dim(1000)
        (2, 32)
    """
    return max(2, min(32, round(1.6 * cardinality**0.56)))


class CategoricalEncoder(nn.Module):
    """``cat [B, C] -> [B, sum(embedding dims)]``."""

    pretrained = False

    def __init__(self, cardinalities: list[int]) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        self.out_dim = sum(e.embedding_dim for e in self.embeddings)

    def forward(self, cat: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb(cat[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)

    def output_columns(self, pre: Any) -> list[str]:
        """The input column behind each output dimension (its embedding's)."""
        return [f.column for f, e in zip(pre.features, self.embeddings) for _ in range(e.embedding_dim)]

    def embed(self, cat: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The continuous inputs for attribution (hone.explain): each column's embedding, keyed by its index."""
        return {str(i): emb(cat[:, i]) for i, emb in enumerate(self.embeddings)}, {}

    def forward_embedded(self, parts: dict[str, torch.Tensor], aux: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([parts[str(i)] for i in range(len(self.embeddings))], dim=1)


@register("categorical")
def build(spec: dict[str, Any], assets: Path | None, pretrained: bool) -> nn.Module:
    return CategoricalEncoder([int(c) for c in spec["cardinalities"]])
