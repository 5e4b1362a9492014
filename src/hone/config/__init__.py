"""The run config: one pydantic model per pipeline stage (:mod:`.sections`), the one flag table
(:mod:`.flags`), building it from YAML and overrides (:mod:`.files`), and the resolution of every
``auto`` for a table and a machine (:mod:`.resolve`), whose result is written to
``config.resolved.yaml`` so a run can be repeated."""

from __future__ import annotations

from hone.config.files import build_config, dump_yaml, load_yaml
from hone.config.flags import FLAGS, SEARCHABLE, command_flags, field_of, flag_of
from hone.config.resolution import (
    ResolvedRunConfig,
    backbone_max_tokens,
    bundled_backbone,
    check_backbone,
    default_cache_root,
    explain_wanted,
    resolve,
    tracking_available,
)
from hone.config.sections import (
    DEFAULT_PRESET,
    FINE_TUNE_ROWS,
    PRESETS,
    STRATEGY_DEFAULTS,
    THRESHOLD_OBJECTIVE,
    AugmentConfig,
    AutoConfig,
    DataConfig,
    EngineConfig,
    EvaluateConfig,
    FederatedConfig,
    ModelConfig,
    PresetName,
    QualityConfig,
    RunConfig,
    SplitConfig,
    StrategyName,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
    parse_duration,
)

__all__ = [
    "DEFAULT_PRESET",
    "FLAGS",
    "PRESETS",
    "SEARCHABLE",
    "FINE_TUNE_ROWS",
    "STRATEGY_DEFAULTS",
    "THRESHOLD_OBJECTIVE",
    "AugmentConfig",
    "DataConfig",
    "EngineConfig",
    "EvaluateConfig",
    "FederatedConfig",
    "ModelConfig",
    "PresetName",
    "QualityConfig",
    "ResolvedRunConfig",
    "RunConfig",
    "SplitConfig",
    "StrategyName",
    "TrackingConfig",
    "TrainConfig",
    "TuneConfig",
    "AutoConfig",
    "backbone_max_tokens",
    "bundled_backbone",
    "build_config",
    "check_backbone",
    "command_flags",
    "default_cache_root",
    "dump_yaml",
    "explain_wanted",
    "field_of",
    "flag_of",
    "load_yaml",
    "parse_duration",
    "resolve",
    "tracking_available",
]
