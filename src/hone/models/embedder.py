"""The pretrained text backbone, frozen, as features for ``hone auto``'s trees: each text column's
mean-pooled embedding (the frozen strategy's), projected on its first ``DIM`` principal components
(fitted on the training rows), appended to the trees' other features.

The TF-IDF SVD the trees read by default knows which words a text has; the backbone's embedding
knows what they mean together. On the bench's tweets LightGBM on the embeddings' 64 components
reached 0.764 validation macro-F1 against 0.738 without them (``python bench/shallow_features.py
--embeddings``). The planner fits the trees on both feature sets; the ensemble selection keeps what
validates.

The backbone stays as it was pretrained (never the fine-tuned network's: that network saw the
training rows, so its embeddings of them would flatter the trees), and goes into the model package
(``baseline/embedder/``: its config and weights; the tokenizer is the network's, the same backbone's)
only when a member the ensemble weights reads it. Embeddings are computed in fp32, rows sorted by
length into batches of ``BATCH`` (little padding), then put back in order.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

DIM = 64  # principal components per text column
BATCH = 64


class Embedder:
    """``transform(batch)`` -> ``[N, DIM * text columns]`` float32: the projected pooled embeddings."""

    def __init__(self, encoder: Any, text: Any, mean: np.ndarray, components: np.ndarray,
                 config: dict[str, Any] | None = None) -> None:
        self.encoder = encoder.eval()
        self.text = text  # the text preprocessor: its columns and its (the backbone's) tokenizer
        self.mean = np.asarray(mean, dtype=np.float32)  # [C, H]
        self.components = np.asarray(components, dtype=np.float32)  # [C, k, H]
        self.config = config or {}

    @property
    def width(self) -> int:
        return int(self.components.shape[0] * self.components.shape[1])

    def transform(self, batch: pa.Table) -> np.ndarray:
        return self.project(embed(self.encoder, self.text, batch))

    def project(self, pooled: list[np.ndarray]) -> np.ndarray:
        """Pooled embeddings (one ``[N, H]`` per text column) -> ``[N, DIM * columns]``."""
        parts = [(pooled[i] - self.mean[i]) @ self.components[i].T for i in range(len(pooled))]
        return np.concatenate(parts, axis=1).astype(np.float32)

    @classmethod
    def fit(cls, encoder: Any, text: Any, pooled: list[np.ndarray], *, seed: int = 0,
            config: dict[str, Any] | None = None) -> Embedder:
        """From the training rows' pooled embeddings (one ``[N, H]`` per text column)."""
        from sklearn.decomposition import PCA

        means, comps = [], []
        for e in pooled:
            k = max(1, min(DIM, e.shape[0] - 1, e.shape[1]))
            pca = PCA(k, random_state=seed).fit(e)
            c = np.zeros((DIM, e.shape[1]), dtype=np.float32)
            c[:k] = pca.components_
            means.append(pca.mean_.astype(np.float32))
            comps.append(c)
        return cls(encoder, text, np.stack(means), np.stack(comps), config)

    # -- persistence: the backbone's config and weights (safetensors), the projection as arrays -------
    def arrays(self) -> dict[str, np.ndarray]:
        return {"embedder.mean": self.mean, "embedder.components": self.components}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        backbone = self.encoder.backbone
        (folder / "config.json").write_text(backbone.config.to_json_string(), encoding="utf-8")
        state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        (folder / "embedder.json").write_text(json.dumps({"dim": DIM, **self.config}, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, text: Any, arrays: dict[str, np.ndarray]) -> Embedder:
        from safetensors.torch import load_file

        from hone.models.encoders.text import TextEncoder, load_backbone

        backbone = load_backbone(folder, pretrained=False)
        backbone.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        config = json.loads((folder / "embedder.json").read_text(encoding="utf-8"))
        return cls(TextEncoder(backbone, text.columns), text, arrays["embedder.mean"], arrays["embedder.components"],
                   config)


def pretrained_encoder(backbone_dir: str | Path, columns: list[str]) -> Any:
    """The backbone as pretrained, in a text encoder over ``columns`` (fp32, inference mode)."""
    from hone.models.encoders.text import TextEncoder, load_backbone

    return TextEncoder(load_backbone(backbone_dir, pretrained=True), columns).eval()


def embed(encoder: Any, text: Any, batch: pa.Table) -> list[np.ndarray]:
    """Each text column's pooled embeddings ``[N, H]`` (fp32), in the batch's row order."""
    import torch

    from hone.models.embedding_cache import pooled

    with torch.inference_mode():
        return [pooled(encoder, text, batch, col, "cpu", BATCH) for col in text.columns]


def timed_embed(encoder: Any, text: Any, batch: pa.Table) -> tuple[list[np.ndarray], float]:
    t0 = time.perf_counter()
    return embed(encoder, text, batch), time.perf_counter() - t0
