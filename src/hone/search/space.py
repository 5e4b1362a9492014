"""The search space: defaults per fine-tuning strategy, merged with ``tune.space`` from the config.

A parameter is a short name (``lr``, ``epochs``...) or any dotted config field. Its spec is
``{"low": a, "high": b, "log": bool}`` (a float range; integers when both ends are integers),
``{"choices": [...]}``, or a plain value (fixed, not searched).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hone.config import FLAGS, SEARCHABLE
from hone.errors import ConfigError

# The searchable settings, by the short names of the one flag table (hone.config.FLAGS).
FIELDS: dict[str, str] = {name: FLAGS[name] for name in SEARCHABLE}

_REGULARISE = {"dropout": {"low": 0.0, "high": 0.3}, "weight_decay": {"low": 0.0, "high": 0.1},
               "warmup_ratio": {"low": 0.0, "high": 0.2}}

# Defaults around each strategy's own defaults (hone.config.STRATEGY_DEFAULTS), wide enough to matter.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "full": {"lr": {"low": 1e-5, "high": 1.5e-4, "log": True}, "head_lr": {"low": 2e-4, "high": 5e-3, "log": True},
             "epochs": {"low": 2, "high": 6}, "batch_size": {"choices": [16, 32]}, **_REGULARISE},
    "top-k": {"lr": {"low": 2e-5, "high": 5e-4, "log": True}, "head_lr": {"low": 2e-4, "high": 5e-3, "log": True},
              "epochs": {"low": 2, "high": 8}, "batch_size": {"choices": [16, 32, 64]}, "top_k": {"low": 1, "high": 6},
              **_REGULARISE},
    "lora": {"lr": {"low": 1e-4, "high": 3e-3, "log": True}, "head_lr": {"low": 2e-4, "high": 5e-3, "log": True},
             "epochs": {"low": 2, "high": 8}, "batch_size": {"choices": [16, 32, 64]},
             "lora_r": {"choices": [4, 8, 16, 32]}, **_REGULARISE},
    "frozen": {"lr": {"low": 2e-4, "high": 1e-2, "log": True}, "epochs": {"low": 5, "high": 30},
               "batch_size": {"choices": [32, 64, 128]}, **_REGULARISE},
    "tabular": {"lr": {"low": 2e-4, "high": 1e-2, "log": True}, "epochs": {"low": 5, "high": 40},
                "batch_size": {"choices": [64, 128, 256, 512]}, "dropout": {"low": 0.0, "high": 0.4},
                "weight_decay": {"low": 0.0, "high": 0.1}, "warmup_ratio": {"low": 0.0, "high": 0.2}},
}


def dotted(name: str) -> str:
    return FIELDS.get(name, name)


def explicit_settings(cfg: Any) -> set[str]:
    """The short names of the searchable settings the user set (flag, keyword or config file)."""
    out = set()
    for name, field in FIELDS.items():
        section, key = field.split(".")
        if key in getattr(cfg, section).model_fields_set:
            out.add(name)
    return out


def build_space(strategy: str, has_text: bool, user: dict[str, Any], *, replace: bool = False,
                backbone_layers: int | None = None, fixed: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The space searched: the strategy's defaults (unless ``replace``) without the settings in
    ``fixed`` (set by the user: their value applies), updated by the user's entries; ``None`` removes
    a parameter, a plain value fixes it. Every entry is checked here."""
    space = {} if replace else json.loads(json.dumps(DEFAULT_SPACES[strategy if has_text else "tabular"]))
    for name in fixed:
        space.pop(name, None)
    if backbone_layers and "top_k" in space:
        space["top_k"]["high"] = min(space["top_k"]["high"], backbone_layers)
    for name, spec in (user or {}).items():
        if spec is None:
            space.pop(name, None)
        else:
            space[name] = {k: _number(v) for k, v in spec.items()} if isinstance(spec, dict) else spec
    from hone.config import field_of

    for name, spec in space.items():
        if dotted(name).startswith(("data.", "tune.", "quality.")):
            raise ConfigError(f"tune.space cannot search {name!r}: the data, audit and search settings are fixed "
                              "for a study")
        try:
            field_of(dotted(name))
        except (KeyError, AttributeError) as err:
            from hone.errors import did_you_mean

            raise ConfigError(f"tune.space: unknown parameter {name!r}.{did_you_mean(name, FIELDS)} Use a short "
                              f"name ({', '.join(FIELDS)}) or a dotted config field") from err
        _check_spec(name, spec)
    return space


def _number(v: Any) -> Any:
    """YAML reads ``1e-5`` (no dot) as a string: such bounds are numbers."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _check_spec(name: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        return  # a fixed value: the config validates it
    if "choices" in spec:
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"tune.space.{name}: choices must be a non-empty list and come alone, got {spec}")
        return
    low, high = spec.get("low"), spec.get("high")
    if set(spec) - {"low", "high", "log", "step"} or not all(isinstance(v, (int, float)) for v in (low, high)):
        raise ConfigError(f"tune.space.{name}: give {{low, high[, log]}} numbers or {{choices: [...]}}, got {spec}")
    if low > high or (spec.get("log") and low <= 0):  # type: ignore[operator]  # both numbers: checked above
        raise ConfigError(f"tune.space.{name}: needs low <= high (and low > 0 with log), got {spec}")


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Sample one value per searched parameter on an Optuna trial; fixed values pass through."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    dists = distributions(space)
    out = {}
    for name, spec in space.items():
        d = dists.get(name)
        if d is None:
            out[name] = spec
        elif isinstance(d, CategoricalDistribution):
            out[name] = trial.suggest_categorical(name, list(d.choices))
        elif isinstance(d, IntDistribution):
            out[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """The searched parameters as Optuna distributions (the ones :func:`suggest` samples from)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            continue
        if "choices" in spec:
            out[name] = CategoricalDistribution(spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not isinstance(spec["low"], bool):
            out[name] = IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            out[name] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return out


def backbone_layers(backbone: str | None) -> int | None:
    """Transformer layers of a local Hugging Face model folder (the top_k range), if it says."""
    if not backbone:
        return None
    try:
        return int(json.loads((Path(backbone) / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"])
    except (OSError, ValueError, KeyError):
        return None


