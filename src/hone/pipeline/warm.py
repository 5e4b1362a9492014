"""Warm start (``--init-from MODEL_DIR``): a new network starts from an earlier hone model's weights
where they mean the same thing here.

Per part of the network:
- a modality's encoder (the fine-tuned text or image backbone, the numeric and categorical encoders)
  when its preprocessing is the same as the earlier model's (the same columns; for categories, the
  same vocabularies, so that an embedding row is the same category);
- the head when the task, the classes and every encoder are the same: the same table with new rows
  continues where the earlier model stopped; a new target keeps the encoders and trains a new head.

Only tensors of the same name and shape are loaded; what was kept and what is new is logged and
recorded in ``metrics.json`` (``training.init_from``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hone._logging import get_logger
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet

logger = get_logger("hone.fit")


def warm_start(net: HoneNet, pre: Preprocessor, model_dir: Path) -> dict[str, Any]:
    """Load into ``net`` the parts of the model in ``model_dir`` that fit; returns what was kept."""
    from hone.artifact import load

    earlier = load(model_dir, precision="fp32")
    old_pre, old_state = earlier.pre, earlier.net.state_dict()
    same: list[str] = []
    for name in net.encoders:
        if name in earlier.net.encoders and _same_preprocessing(name, pre, old_pre):
            same.append(name)
    head = (len(same) == len(net.encoders) == len(earlier.net.encoders) and pre.schema.task == old_pre.schema.task
            and list(pre.schema.classes) == list(old_pre.schema.classes))
    prefixes = [f"encoders.{n}." for n in same] + (["head."] if head else [])
    state = net.state_dict()
    loaded = {k: v for k, v in old_state.items()
              if k in state and any(k.startswith(p) for p in prefixes) and v.shape == state[k].shape}
    with torch.no_grad():
        net.load_state_dict(loaded, strict=False)
    new = [n for n in net.encoders if n not in same] + ([] if head else ["head"])
    kept = same + (["head"] if head else [])
    record = {"model": str(model_dir), "kept": kept, "new": new, "tensors": len(loaded)}
    logger.info("warm start from %s: kept %s (%d tensors)%s", model_dir, ", ".join(kept) or "nothing",
                len(loaded), f"; new: {', '.join(new)}" if new else "")
    return record


def _same_preprocessing(name: str, pre: Preprocessor, old: Preprocessor) -> bool:
    """The modality reads the same columns the same way (categories: the same vocabularies)."""
    a, b = pre.modalities.get(name), old.modalities.get(name)
    if a is None or b is None:
        return False
    if name in ("text", "image"):
        return list(getattr(a, "columns", getattr(a, "names", []))) == list(getattr(b, "columns",
                                                                                  getattr(b, "names", [])))
    if name == "numeric":
        return [f.column for f in a.features] == [f.column for f in b.features]  # type: ignore[attr-defined]
    return bool(a.to_dict() == b.to_dict())
