"""Numeric encoder: standardised values and missing flags pass through to the fusion head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hone.models.encoders import register


class NumericEncoder(nn.Module):
    """``num [B, W] -> [B, W]`` (the identity: the head learns from the standardised values)."""

    pretrained = False

    def __init__(self, width: int) -> None:
        super().__init__()
        self.out_dim = width

    def forward(self, num: torch.Tensor) -> torch.Tensor:
        return num

    def output_columns(self, pre: Any) -> list[str]:
        """The input column behind each output dimension (a value and a missing flag per feature)."""
        return [f.column for f in pre.features for _ in (0, 1)]

    def embed(self, num: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The continuous inputs for attribution (hone.explain): the values and flags themselves,
        ``[B, W, 1]`` (one-wide vectors, as a category's embedding or a token's is wider)."""
        return {"values": num.float().unsqueeze(-1)}, {}

    def forward_embedded(self, parts: dict[str, torch.Tensor], aux: dict[str, torch.Tensor]) -> torch.Tensor:
        return parts["values"].squeeze(-1)


@register("numeric")
def build(spec: dict[str, Any], assets: Path | None, pretrained: bool) -> nn.Module:
    return NumericEncoder(int(spec["width"]))
