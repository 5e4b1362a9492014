"""Image encoder: one pretrained Hugging Face vision backbone shared by the image columns, globally
pooled per column, the pooled vectors (zeroed for missing images) and presence flags concatenated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hone.errors import ModelDirError
from hone.models.encoders import register

NORM = 1.0  # the length of each column's pooled image vector entering the fusion head


class ImageEncoder(nn.Module):
    """``{column: (pixels [B,3,S,S], present [B]) or (pooled [B,H], present [B])} -> [B, (H + 1) * n_columns]``:
    per column, the pooled vector (layer-normalised to length ``NORM`` when other columns share the
    head; zeros for a missing image) and the presence flag.

    A column given as ``[B, H]`` is already pooled (the frozen strategy's cached embeddings).

    Args:
        backbone: a transformers vision model without a task head (``AutoModel``): a convolutional
            one (MobileNet, ConvNeXt, ResNet) is average-pooled over its last feature map, a
            transformer (ViT, DINOv2, CLIP vision) averaged over its patch tokens.
        columns: the image columns, in order.
        size: the input side, to measure the backbone's output width.
        fused: whether other kinds of columns are fused with the images (the vectors are then normalised).
    """

    pretrained = True

    def __init__(self, backbone: nn.Module, columns: list[str], size: int, fused: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.columns = list(columns)
        self.fused = fused  # other columns (text, numeric, categorical) share the head: normalise (forward)
        for m in backbone.modules():
            # transformers' MobileNet ports give BatchNorm TensorFlow's decay (0.997) as PyTorch's
            # momentum, the weight of the *new* batch: the running statistics would be the last
            # training batch's alone, and evaluation would use them (validation macro-F1 0.41 for
            # 0.9 training accuracy on Fashion-MNIST). PyTorch's (and torchvision's) 0.1 instead.
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None and m.momentum > 0.5:
                m.momentum = 0.1
        was = backbone.training
        backbone.eval()
        with torch.no_grad():
            self.hidden = int(self.pool(torch.zeros(1, 3, size, size)).shape[1])
        backbone.train(was)
        self.out_dim = (self.hidden + 1) * len(self.columns)

    def train(self, mode: bool = True) -> ImageEncoder:
        """As ``nn.Module.train``, but batch-norm layers whose weights do not train stay in eval mode:
        a frozen part of a CNN keeps its pretrained running statistics (top-k, frozen)."""
        super().train(mode)
        if mode:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    @property
    def convolutional(self) -> bool:
        """Whether the backbone has no attention projections (LoRA does not apply)."""
        return not any(isinstance(m, nn.Linear) and any(k in n for k in ("query", "q_proj", "qkv"))
                       for n, m in self.backbone.named_modules())

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, H]``."""
        out = self.backbone(pixel_values=pixels)
        hidden = out.last_hidden_state
        if hidden.ndim == 4:  # a feature map [B, C, h, w]
            return hidden.mean(dim=(2, 3))
        return hidden[:, 1:].mean(1)  # the patch tokens, the first (CLS) left out

    def forward(self, image: dict[str, Any]) -> torch.Tensor:
        return self.forward_embedded(*self.embed(image))

    def output_columns(self, pre: Any) -> list[str]:
        """The input column behind each output dimension (its pooled vector and presence flag)."""
        return [c for c in self.columns for _ in range(self.hidden + 1)]

    def embed(self, image: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``({column: pixels [B,3,S,S] or pooled [B,H]}, {column: present [B]})``: the continuous
        inputs for attribution (hone.explain) and what :meth:`forward_embedded` needs with them."""
        return {c: image[c][0] for c in self.columns}, {c: image[c][1] for c in self.columns}

    def forward_embedded(self, pixels: dict[str, torch.Tensor], present_by: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for c in self.columns:
            x, present = pixels[c], present_by[c]
            pooled = (x if x.ndim == 2 else self.pool(x)).float()
            # Fused with other columns, layer-normalised to unit length: MobileNetV2's pooled vector
            # has a norm near 28, and the head, trained by Adam, then learns the 1,280 image inputs
            # far faster than a few tabular ones and overfits through them. Normalised, the frozen
            # fused head on bench/images.py's table (Fashion-MNIST images, a price, a store) scored
            # test macro-F1 0.871, against 0.811 unnormalised, 0.853 at length 4, and 0.839 without
            # the image. Alone, the images enter as the backbone gives them: normalising them there
            # cost 3 points (full fine-tune 0.872 -> 0.839, frozen 0.839 -> 0.819).
            if self.fused:
                pooled = F.layer_norm(pooled, (self.hidden,)) * (NORM / self.hidden ** 0.5)
            present = present.float().unsqueeze(1)
            parts += [pooled * present, present]
        return torch.cat(parts, dim=1)


def load_vision_backbone(path: str | Path, *, pretrained: bool) -> nn.Module:
    """A vision backbone from a Hugging Face folder: its weights (``pretrained``) or only its config.
    CLIP / SigLIP folders give their vision tower."""
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(str(path))
        if getattr(config, "vision_config", None) is not None and getattr(config, "text_config", None) is not None:
            model = AutoModel.from_pretrained(str(path)) if pretrained else AutoModel.from_config(config)
            return model.vision_model
        if pretrained:
            return AutoModel.from_pretrained(str(path))
        return AutoModel.from_config(config)
    except (OSError, ValueError, KeyError) as err:
        raise ModelDirError(f"{str(path)!r} is not a usable Hugging Face vision model folder (model.image_backbone): "
                            f"{str(err).splitlines()[0]}") from err


@register("image")
def build(spec: dict[str, Any], assets: Path | None, pretrained: bool) -> nn.Module:
    if assets is None:
        raise ModelDirError("an image encoder needs its backbone folder")
    return ImageEncoder(load_vision_backbone(assets, pretrained=pretrained), spec["columns"], int(spec["size"]),
                        fused=bool(spec.get("fused", False)))
