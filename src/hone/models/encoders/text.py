"""Text encoder: one pretrained Hugging Face backbone shared by the text columns, attention-masked
mean pooling per column, the pooled vectors concatenated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hone.errors import ModelDirError
from hone.models.encoders import register


class TextEncoder(nn.Module):
    """``{column: (input_ids [B,T], attention_mask [B,T]) or pooled [B,H]} -> [B, H * n_columns]``.

    A column given as a ``[B, H]`` tensor is already pooled (the frozen strategy's cached
    embeddings) and passes through.

    Args:
        backbone: a transformers ``PreTrainedModel`` without a task head (``AutoModel``).
        columns: the text columns, in order.
    """

    pretrained = True

    def __init__(self, backbone: nn.Module, columns: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.columns = list(columns)
        self.hidden = int(backbone.config.hidden_size)
        self.out_dim = self.hidden * len(self.columns)

    def set_dropout(self, p: float) -> None:
        """Set every dropout layer of the backbone to ``p`` (attention dropout included: BERT-style
        attention reads its dropout layer's ``p``)."""
        for m in self.backbone.modules():
            if isinstance(m, nn.Dropout):
                m.p = p

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` token ids and mask -> ``[B, H]``: the mean of the last hidden states over real tokens."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, text: dict[str, Any]) -> torch.Tensor:
        parts = [v if isinstance(v, torch.Tensor) else self.pool(*v) for v in (text[c] for c in self.columns)]
        return torch.cat([p.float() for p in parts], dim=1)

    def output_columns(self, pre: Any) -> list[str]:
        """The input column behind each output dimension (hone.explain permutes them)."""
        return [c for c in self.columns for _ in range(self.hidden)]

    # -- attribution (hone.explain): the continuous inputs, and the forward pass from them ---------
    def embed(self, text: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``({column: token embeddings [B,T,H]}, {column: attention mask [B,T]})``."""
        table = self.backbone.get_input_embeddings()
        return {c: table(text[c][0]) for c in self.columns}, {c: text[c][1] for c in self.columns}

    def forward_embedded(self, parts: dict[str, torch.Tensor], aux: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` from :meth:`embed`'s token embeddings (position embeddings are added by the backbone)."""
        out = []
        for c in self.columns:
            mask = aux[c]
            hidden = self.backbone(inputs_embeds=parts[c], attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)).float())
        return torch.cat(out, dim=1)


def load_backbone(path: str | Path, *, pretrained: bool) -> nn.Module:
    """Load a backbone from a Hugging Face folder: its weights (``pretrained``) or only its config.

    The second form is how a saved hone model is rebuilt: the weights then come from the model's
    own ``model.safetensors``.
    """
    from transformers import AutoConfig, AutoModel

    try:
        if pretrained:
            return AutoModel.from_pretrained(str(path))
        return AutoModel.from_config(AutoConfig.from_pretrained(str(path)))
    except (OSError, ValueError, KeyError) as err:
        raise ModelDirError(
            f"{str(path)!r} is not a usable Hugging Face model folder (model.backbone): {str(err).splitlines()[0]}"
        ) from err


@register("text")
def build(spec: dict[str, Any], assets: Path | None, pretrained: bool) -> nn.Module:
    if assets is None:
        raise ModelDirError("a text encoder needs its backbone folder")
    return TextEncoder(load_backbone(assets, pretrained=pretrained), spec["columns"])
