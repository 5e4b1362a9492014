"""Read model folders written by earlier hone versions: a model never breaks on an upgrade.

Each migration rewrites one format version's ``hone.json`` and weight names into the next one's,
in memory; the folder on disk is left as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def migrate(meta: dict[str, Any], weights: dict[str, torch.Tensor], root: Path
            ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Path]]:
    """``(meta, weights, assets)`` in the current format; ``assets`` maps a modality to its folder."""
    if int(meta.get("format_version", 1)) < 2:
        meta, weights = _v1_to_v2(meta, weights)
        assets = {"text": root / "backbone"} if (root / "backbone").is_dir() else {}
    else:
        base = root / "backbones"
        assets = {p.name: p for p in sorted(base.iterdir()) if p.is_dir()} if base.is_dir() else {}
    return meta, weights, assets


def _v1_to_v2(meta: dict[str, Any], weights: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    # v1: fixed "text" and "tabular" parts; v2: one entry per modality (text, numeric, categorical).
    net, pre = meta["net"], meta["preprocessor"]
    encoders: dict[str, dict[str, Any]] = {}
    modalities: dict[str, Any] = {}
    if net.get("text_columns"):
        encoders["text"] = {"columns": net["text_columns"]}
        modalities["text"] = pre["text"]
    if net.get("n_numeric"):
        encoders["numeric"] = {"width": net["n_numeric"]}
        modalities["numeric"] = {"features": pre["tabular"]["numeric"]}
    if net.get("cardinalities"):
        encoders["categorical"] = {"cardinalities": net["cardinalities"]}
        modalities["categorical"] = {"features": pre["tabular"]["categorical"]}
    new_meta = {
        **meta,
        "format_version": 2,
        "net": {
            "encoders": encoders,
            "n_outputs": net["n_outputs"],
            "hidden_size": net["hidden_size"],
            "dropout": net["dropout"],
        },
        "preprocessor": {k: v for k, v in pre.items() if k not in ("tabular", "text")} | {"modalities": modalities},
        "precision": meta.get("training", {}).get("precision", "auto"),
    }
    renamed = {}
    for k, v in weights.items():
        if k.startswith("text."):
            k = "encoders.text." + k[len("text."):]
        elif k.startswith("tabular.embeddings."):
            k = "encoders.categorical.embeddings." + k[len("tabular.embeddings."):]
        renamed[k] = v
    return new_meta, renamed
