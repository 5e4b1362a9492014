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
# ... and in vision transformers: the attention projections (ViT and DINOv2 name them query/key/value
# or q_proj/k_proj/v_proj, some a fused qkv; an unused pooler's "dense" must not be one of them).
LORA_IMAGE_TARGETS = ["query", "key", "value", "q_proj", "k_proj", "v_proj", "qkv"]


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
               backbones: dict[str, Path]) -> Feeder:
        """How training and validation batches reach the network."""
        return Feeder(net, pre, device=device, precision=precision)

    def finalize(self, net: HoneNet) -> None:
        """Make the network plain again before it is saved."""
        net.requires_grad_(True)


class TopK(Strategy):
    name = "top-k"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        if not net.backbones():
            return super().prepare(net, cfg)
        said = []
        for modality, enc in net.backbones().items():
            layers = _layers(enc.backbone)
            k = min(cfg.top_k, len(layers))
            enc.backbone.requires_grad_(False)
            for layer in layers[len(layers) - k:]:
                layer.requires_grad_(True)
            if modality == "image":  # what follows the blocks (a last 1x1 convolution, a final norm) trains too
                for child in _after_layers(enc.backbone):
                    child.requires_grad_(True)
            said.append(f"the last {k} of {len(layers)} {modality} backbone layers")
        return f"top-k: {' and '.join(said)} and the head train"


class Frozen(Strategy):
    name = "frozen"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        if not net.backbones():
            return super().prepare(net, cfg)
        for enc in net.backbones().values():
            enc.backbone.requires_grad_(False)
        return "frozen: the backbones never train, only the head (pooled embeddings cached on disk)"

    def feeder(self, net: HoneNet, pre: Preprocessor, *, device: Any, precision: str, cache_dir: Path,
               backbones: dict[str, Path]) -> Feeder:
        if not net.backbones():
            return super().feeder(
                net, pre, device=device, precision=precision, cache_dir=cache_dir, backbones=backbones
            )
        return CachedFeeder(net, pre, device=device, precision=precision, cache_dir=cache_dir, backbones=backbones)


class Lora(Strategy):
    name = "lora"

    def prepare(self, net: HoneNet, cfg: ModelConfig) -> str:
        if not net.backbones():
            return super().prepare(net, cfg)
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise MissingDependencyError(
                "model.strategy 'lora' needs peft; install it with: pip install 'hone[lora]'"
            ) from err
        said = []
        for modality, enc in net.backbones().items():
            if modality == "image" and enc.convolutional:
                raise ConfigError(f"model.strategy 'lora' does not apply to the image backbone "
                                  f"{type(enc.backbone).__name__}: it is convolutional, with no attention projections "
                                  "to adapt; use full, top-k or frozen, or a ViT-type model.image_backbone")
            targets = LORA_IMAGE_TARGETS if modality == "image" else LORA_TARGETS
            present = sorted({n.rsplit(".", 1)[-1] for n, m in enc.backbone.named_modules()
                              if isinstance(m, nn.Linear)} & set(targets))
            lcfg = LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.1, target_modules=present or targets
            )
            enc.backbone = get_peft_model(enc.backbone, lcfg)
            n = sum(p.numel() for p in enc.backbone.parameters() if p.requires_grad)
            said.append(f"{n / 1e3:.0f}k weights on {', '.join(present or targets)} in the {modality} backbone")
        return f"lora: rank {cfg.lora_r}, alpha {cfg.lora_alpha} adapters ({'; '.join(said)})"

    def finalize(self, net: HoneNet) -> None:
        for enc in net.backbones().values():
            if hasattr(enc.backbone, "merge_and_unload"):
                enc.backbone = enc.backbone.merge_and_unload()
        super().finalize(net)


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (Strategy, TopK, Frozen, Lora)}


def get_strategy(name: str) -> Strategy:
    """The strategy object for a (resolved) strategy name."""
    if name not in STRATEGIES:
        raise ConfigError(f"model.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return STRATEGIES[name]()


_LAYER_PATHS = ("encoder.layer", "encoder.layers", "layers", "transformer.layer", "layer", "encoder.stages", "stages")


def _after_layers(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's direct children that come after its layers (MobileNet's last 1x1 convolution,
    a ViT's final norm): they train with the top layers."""
    return [m for n, m in backbone.named_children()
            if n in ("conv_1x1", "layernorm", "post_layernorm", "norm", "final_layernorm")]


def _layers(backbone: nn.Module) -> nn.ModuleList:
    for path in _LAYER_PATHS:
        mod: Any = backbone
        for part in path.split("."):
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if isinstance(mod, nn.ModuleList):
            return mod
    raise ConfigError(f"model.strategy 'top-k' cannot find the layers of {type(backbone).__name__}; "
                      "use 'full', 'lora' or 'frozen'")
