"""The modality registry of the models layer: one encoder per modality.

An encoder is an ``nn.Module`` built from its preprocessor's ``encoder_spec()`` that maps the
modality's inputs to ``[B, out_dim]``. ``pretrained = True`` marks encoders whose weights come from
a pretrained backbone (they train at the backbone learning rate and their folder's config and
tokenizer files are saved with the model).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

# modality -> build(spec, assets folder or None, pretrained) -> nn.Module with out_dim
ENCODERS: dict[str, Callable[[dict[str, Any], Path | None, bool], nn.Module]] = {}


def register(modality: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ENCODERS[modality] = build
        return build

    return deco


def build_encoder(modality: str, spec: dict[str, Any], assets: Path | None, pretrained: bool) -> nn.Module:
    _load_builtin()
    return ENCODERS[modality](spec, assets, pretrained)


def _load_builtin() -> None:
    from hone.models.encoders import categorical, image, numeric, text  # noqa: F401  (each registers itself)
