"""The fused network (text encoder per text column, tabular encoder, MLP head) and its builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hone.models.encoders.tabular import TabularEncoder
from hone.models.encoders.text import TextEncoder, load_backbone


@dataclass
class NetSpec:
    """Everything needed to rebuild the network's shape (saved in ``hone.json``)."""

    text_columns: list[str] = field(default_factory=list)
    n_numeric: int = 0
    cardinalities: list[int] = field(default_factory=list)
    n_outputs: int = 1
    hidden_size: int = 256
    dropout: float = 0.1


class HoneNet(nn.Module):
    """Text columns share one pretrained encoder; their pooled vectors, the numeric features and the
    categorical embeddings are concatenated and fed to an MLP head.

    Inputs are a dict: ``{"text": {col: (ids [B,T], mask [B,T])}, "num": [B,N], "cat": [B,C]}``;
    the output is ``[B, n_outputs]`` logits (or the regression value).
    """

    def __init__(self, spec: NetSpec, text: TextEncoder | None) -> None:
        super().__init__()
        self.spec = spec
        self.text = text
        self.tabular = TabularEncoder(spec.n_numeric, spec.cardinalities) if (spec.n_numeric or spec.cardinalities) else None
        width = (text.out_dim * len(spec.text_columns) if text else 0) + (self.tabular.out_dim if self.tabular else 0)
        self.head = nn.Sequential(
            nn.Dropout(spec.dropout),
            nn.Linear(width, spec.hidden_size),
            nn.GELU(),
            nn.Dropout(spec.dropout),
            nn.Linear(spec.hidden_size, spec.n_outputs),
        )

    def forward(self, batch: dict) -> torch.Tensor:
        parts = []
        if self.text is not None:
            # "text_emb" carries precomputed pooled embeddings (the frozen strategy's cache)
            cached = batch.get("text_emb")
            parts += [cached[c] if cached is not None else self.text(*batch["text"][c]) for c in self.spec.text_columns]
        if self.tabular is not None:
            parts.append(self.tabular(batch["num"], batch["cat"]))
        fused = torch.cat([p.float() for p in parts], dim=1)
        return self.head(fused)


def build_model(spec: NetSpec, backbone_dir: str | Path | None, *, pretrained: bool) -> HoneNet:
    """Build the network; the backbone's weights are loaded only when ``pretrained``."""
    text = TextEncoder(load_backbone(backbone_dir, pretrained=pretrained)) if spec.text_columns and backbone_dir else None
    return HoneNet(spec, text)
