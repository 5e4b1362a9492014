"""Fine-tuning strategies: which backbone weights train (full, LoRA, top-k layers, frozen).

Each strategy is applied to a built :class:`~hone.models.build.HoneNet` before training and undone
by :func:`finalize` before saving, so a saved model is always a plain network (LoRA adapters are
merged into the weights) and prediction needs no extra step.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from hone.errors import ConfigError, MissingDependencyError
from hone.models.build import HoneNet

STRATEGIES = ("full", "lora", "top-k", "frozen")
# The projections LoRA adapts in BERT-style encoders (attention and MLP).
LORA_TARGETS = ["query", "key", "value", "dense"]


def _layers(backbone: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer", "layer"):
        mod: Any = backbone
        for part in path.split("."):
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if isinstance(mod, nn.ModuleList):
            return mod
    raise ConfigError(f"model.strategy 'top-k' cannot find the transformer layers of {type(backbone).__name__}; "
                      "use 'full', 'lora' or 'frozen'")


def apply_strategy(net: HoneNet, strategy: str, *, top_k: int = 2, lora_r: int = 8, lora_alpha: int = 16,
                   lora_dropout: float = 0.1) -> str:
    """Set ``requires_grad`` (or insert LoRA adapters) for ``strategy``; returns a one-line description."""
    if net.text is None or strategy == "full":
        return "full: every weight trains"
    backbone = net.text.backbone
    if strategy == "frozen":
        backbone.requires_grad_(False)
        return "frozen: the backbone never trains, only the head"
    if strategy == "top-k":
        layers = _layers(backbone)
        k = min(top_k, len(layers))
        backbone.requires_grad_(False)
        for layer in layers[len(layers) - k:]:
            layer.requires_grad_(True)
        return f"top-k: the last {k} of {len(layers)} transformer layers and the head train"
    if strategy == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise MissingDependencyError("model.strategy 'lora' needs peft; install it with: pip install 'hone[lora]'") from err
        cfg = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=LORA_TARGETS)
        net.text.backbone = get_peft_model(backbone, cfg)
        n = sum(p.numel() for p in net.text.backbone.parameters() if p.requires_grad)
        return f"lora: rank {lora_r}, alpha {lora_alpha} adapters on {', '.join(LORA_TARGETS)} ({n / 1e3:.0f}k weights)"
    raise ConfigError(f"model.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def finalize(net: HoneNet) -> None:
    """Merge LoRA adapters into the backbone and make every weight trainable again (for saving)."""
    if net.text is not None and hasattr(net.text.backbone, "merge_and_unload"):
        net.text.backbone = net.text.backbone.merge_and_unload()
    net.requires_grad_(True)
