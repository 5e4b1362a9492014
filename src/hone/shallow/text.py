"""TF-IDF features of texts (word 1-2 grams, sublinear term frequency), fitted and re-applied from a
saved vocabulary and IDF vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OPTIONS: dict[str, Any] = {"ngram_range": (1, 2), "sublinear_tf": True, "dtype": np.float32}


@dataclass
class Tfidf:
    """A fitted TF-IDF: its vocabulary (term -> column) and IDF weights."""

    vocabulary: dict[str, int]
    idf: np.ndarray

    def transform(self, texts: list[str]) -> Any:
        """The sparse TF-IDF matrix of ``texts`` (rows L2-normalised, as when fitted)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(**OPTIONS, vocabulary=self.vocabulary)
        vec.idf_ = self.idf
        return vec.transform(texts)


def fit_tfidf(texts: list[str], *, max_features: int, min_df: int = 1,
              single_characters: bool = False) -> tuple[Tfidf, Any]:
    """The TF-IDF fitted on ``texts`` and their matrix. With ``single_characters``, a text without any
    word of two or more characters still gives features (its single characters count as words)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def fit(pattern: dict[str, str]) -> tuple[Tfidf, Any]:
        vec = TfidfVectorizer(**OPTIONS, max_features=max_features, min_df=min_df, **pattern)
        x = vec.fit_transform(texts)
        return Tfidf({k: int(v) for k, v in vec.vocabulary_.items()}, vec.idf_.astype(np.float32)), x

    try:
        return fit({})
    except ValueError:  # no word of 2+ characters anywhere
        if not single_characters:
            raise
        return fit({"token_pattern": r"(?u)\b\w+\b"})


def joined(columns: list[list[object]]) -> list[str]:
    """One text per row from several text columns (missing values as empty text)."""
    return [" \n ".join("" if v is None else str(v) for v in parts) for parts in zip(*columns)]
