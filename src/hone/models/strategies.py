"""Fine-tuning strategies: which backbone weights train (full, LoRA, top-k layers, frozen).

A strategy is one object: it prepares the network (``requires_grad``, adapters), gives the
optimiser its parameter groups, chooses how batches are fed (the frozen strategy feeds cached
pooled embeddings instead of tokens) and undoes itself before saving, so a saved model is always a
plain network (LoRA adapters merged) and prediction needs no extra step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from hone.config import ModelConfig
from hone.errors import ConfigError, MissingDependencyError
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet
from hone.models.feeding import CachedFeeder, Feeder

# The projections LoRA adapts in BERT-style encoders (attention and MLP).
LORA_TARGETS = ["query", "key", "value", "dense"]


def _no_decay(name: str, p: nn.Parameter) -> bool:
    return p.ndim < 2 or "norm" in name.lower() or "embeddings" in name.lower()


def param_groups(net: nn.Module, *, lr: float, head_lr: float, weight_decay: float,
                 pretrained_prefixes: list[str]) -> list[dict[str, Any]]:
    """AdamW groups: pretrained encoders at ``lr``, new layers at ``head_lr``; no decay on biases,
    norms and embeddings."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith(tuple(pretrained_prefixes)), _no_decay(name, p)), []).append(p)
    return [{"params": ps, "lr": lr if bb else head_lr, "weight_decay": 0.0 if nd else weight_decay}
            for (bb, nd), ps in groups.items()]


class Strategy:
    """``full``: every weight trains. Subclasses change what trains and how batches are fed."""

    name: ClassVar[str] = "full"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        """Set what trains; returns a one-line description."""
        if net.text is not None and not cfg.train_word_embeddings:
            words = net.text.backbone.get_input_embeddings()
            words.requires_grad_(False)  # no gradient for the vocabulary matrix, no optimizer update of it
            return f"full: every weight but the word embeddings ({words.weight.numel() / 1e6:.1f} M) trains"
        return "full: every weight trains"

    def param_groups(self, net: HoneNet, *, lr: float, head_lr: float, weight_decay: float) -> list[dict[str, Any]]:
        return param_groups(net, lr=lr, head_lr=head_lr, weight_decay=weight_decay,
                            pretrained_prefixes=net.pretrained_prefixes())

    def feeder(self, net: HoneNet, pre: Preprocessor, *, device: Any, precision: str, cache_dir: Path,
               backbone: Path | None) -> Feeder:
        """How training and validation batches reach the network."""
        return Feeder(net, pre, device=device, precision=precision)

    def finalize(self, net: HoneNet) -> None:
        """Make the network plain again before it is saved."""
        net.requires_grad_(True)


class TopK(Strategy):
    name = "top-k"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        if net.text is None:
            return super().prepare(net, cfg)
        layers = _layers(net.text.backbone)
        k = min(cfg.top_k, len(layers))
        net.text.backbone.requires_grad_(False)
        for layer in layers[len(layers) - k:]:
            layer.requires_grad_(True)
        return f"top-k: the last {k} of {len(layers)} transformer layers and the head train"


class Frozen(Strategy):
    name = "frozen"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        if net.text is None:
            return super().prepare(net, cfg)
        net.text.backbone.requires_grad_(False)
        return "frozen: the backbone never trains, only the head (pooled embeddings cached on disk)"

    def feeder(self, net: HoneNet, pre: Preprocessor, *, device: Any, precision: str, cache_dir: Path,
               backbone: Path | None) -> Feeder:
        if net.text is None or backbone is None:
            return super().feeder(net, pre, device=device, precision=precision, cache_dir=cache_dir, backbone=backbone)
        return CachedFeeder(net, pre, device=device, precision=precision, cache_dir=cache_dir, backbone=backbone)


class Lora(Strategy):
    name = "lora"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        if net.text is None:
            return super().prepare(net, cfg)
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise MissingDependencyError("model.strategy 'lora' needs peft; install it with: pip install 'hone[lora]'") from err
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.1, target_modules=LORA_TARGETS)
        net.text.backbone = get_peft_model(net.text.backbone, lcfg)
        n = sum(p.numel() for p in net.text.backbone.parameters() if p.requires_grad)
        return (f"lora: rank {cfg.lora_r}, alpha {cfg.lora_alpha} adapters on {', '.join(LORA_TARGETS)} "
                f"({n / 1e3:.0f}k weights)")

    def finalize(self, net: HoneNet) -> None:
        if net.text is not None and hasattr(net.text.backbone, "merge_and_unload"):
            net.text.backbone = net.text.backbone.merge_and_unload()
        super().finalize(net)


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (Strategy, TopK, Frozen, Lora)}


def get_strategy(name: str) -> Strategy:
    """The strategy object for a (resolved) strategy name."""
    if name not in STRATEGIES:
        raise ConfigError(f"model.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return STRATEGIES[name]()


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
