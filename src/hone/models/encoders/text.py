"""A pretrained Hugging Face encoder with attention-masked mean pooling."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hone.errors import ModelDirError


class TextEncoder(nn.Module):
    """Encodes token ids to one vector per row: the mean of the last hidden states over real tokens.

    Args:
        backbone: a transformers ``PreTrainedModel`` without a task head (``AutoModel``).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.out_dim = int(backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: [B, T] -> [B, H]
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


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
