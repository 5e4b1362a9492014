"""The fused network: one encoder per modality, concatenated, then an MLP head."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hone.models.encoders import build_encoder


@dataclass
class NetSpec:
    """Everything needed to rebuild the network's shape (saved in ``hone.json``)."""

    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # modality -> encoder spec, in order
    n_outputs: int = 1
    hidden_size: int = 256
    dropout: float = 0.1


class HoneNet(nn.Module):
    """Each modality's encoder maps its inputs to ``[B, d_m]``; the vectors are concatenated and fed
    to an MLP head. Inputs are ``{modality: inputs}``; the output is ``[B, n_outputs]`` logits (or the
    standardised regression value).
    """

    def __init__(self, spec: NetSpec, encoders: dict[str, nn.Module]) -> None:
        super().__init__()
        self.spec = spec
        self.encoders = nn.ModuleDict(encoders)
        width = sum(int(e.out_dim) for e in self.encoders.values())
        self.head = nn.Sequential(
            nn.Dropout(spec.dropout),
            nn.Linear(width, spec.hidden_size),
            nn.GELU(),
            nn.Dropout(spec.dropout),
            nn.Linear(spec.hidden_size, spec.n_outputs),
        )

    @property
    def text(self) -> nn.Module | None:
        """The text encoder, or None."""
        return self.encoders["text"] if "text" in self.encoders else None

    @property
    def image(self) -> nn.Module | None:
        """The image encoder, or None."""
        return self.encoders["image"] if "image" in self.encoders else None

    def backbones(self) -> dict[str, nn.Module]:
        """The encoders that wrap a pretrained backbone (``.backbone``), by modality."""
        return {n: e for n, e in self.encoders.items() if getattr(e, "pretrained", False)}

    def pretrained_prefixes(self) -> list[str]:
        """Parameter-name prefixes of the encoders that start from pretrained weights."""
        return [f"encoders.{n}." for n, e in self.encoders.items() if getattr(e, "pretrained", False)]

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.head(self.fuse(batch))

    def fuse(self, batch: dict[str, Any]) -> torch.Tensor:
        """The head's input ``[B, D]``: every encoder's output, concatenated."""
        return torch.cat([enc(batch[name]).float() for name, enc in self.encoders.items()], dim=1)

    def output_columns(self, pre: Any) -> list[str]:
        """The input column behind each of :meth:`fuse`'s ``D`` dimensions (``pre``: the fitted
        :class:`~hone.features.pipeline.Preprocessor`)."""
        return [c for name, enc in self.encoders.items() for c in enc.output_columns(pre.modalities[name])]

    def embed(self, batch: dict[str, Any]) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """Per modality, its encoder's continuous inputs and their companions (masks, presence flags):
        what attributions are computed on (hone.explain)."""
        return {name: enc.embed(batch[name]) for name, enc in self.encoders.items()}

    def forward_embedded(self, parts: dict[str, dict[str, torch.Tensor]], aux: dict[str, dict[str, torch.Tensor]]
                         ) -> torch.Tensor:
        """:meth:`forward` from :meth:`embed`'s continuous inputs."""
        fused = torch.cat([enc.forward_embedded(parts[n], aux[n]).float() for n, enc in self.encoders.items()], dim=1)
        return self.head(fused)


def build_model(spec: NetSpec, assets: dict[str, Path], *, pretrained: bool) -> HoneNet:
    """Build the network; ``assets`` maps a modality to its backbone folder, whose weights are
    loaded only when ``pretrained`` (a saved model's weights come from its own safetensors)."""
    return HoneNet(
        spec, {name: build_encoder(name, s, assets.get(name), pretrained) for name, s in spec.encoders.items()}
    )
