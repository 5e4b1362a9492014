"""TF-IDF features of texts (word 1-2 grams, or character 2-5 grams within words; sublinear term
frequency), fitted and re-applied from a saved vocabulary and IDF vector; and texts' surface
statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OPTIONS: dict[str, Any] = {"ngram_range": (1, 2), "sublinear_tf": True, "dtype": np.float32}
# character n-grams within word boundaries: spelling, casing and symbols the word model drops
CHAR_OPTIONS: dict[str, Any] = {"analyzer": "char_wb", "ngram_range": (2, 5), "lowercase": False,
                                "sublinear_tf": True, "dtype": np.float32}


def _options(analyzer: str) -> dict[str, Any]:
    return CHAR_OPTIONS if analyzer == "char_wb" else OPTIONS


@dataclass
class Tfidf:
    """A fitted TF-IDF: its vocabulary (term -> column) and IDF weights."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    analyzer: str = "word"  # or "char_wb" (:data:`CHAR_OPTIONS`)

    def transform(self, texts: list[str]) -> Any:
        """The sparse TF-IDF matrix of ``texts`` (rows L2-normalised, as when fitted)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(**_options(self.analyzer), vocabulary=self.vocabulary)
        vec.idf_ = self.idf
        return vec.transform(texts)


def fit_tfidf(texts: list[str], *, max_features: int, min_df: int = 1,
              single_characters: bool = False, analyzer: str = "word") -> tuple[Tfidf, Any]:
    """The TF-IDF fitted on ``texts`` and their matrix. With ``single_characters``, a text without any
    word of two or more characters still gives features (its single characters count as words)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def fit(pattern: dict[str, str]) -> tuple[Tfidf, Any]:
        vec = TfidfVectorizer(**_options(analyzer), max_features=max_features, min_df=min_df, **pattern)
        x = vec.fit_transform(texts)
        return Tfidf({k: int(v) for k, v in vec.vocabulary_.items()}, vec.idf_.astype(np.float32), analyzer), x

    try:
        return fit({})
    except ValueError:  # no word of 2+ characters anywhere
        if not single_characters or analyzer != "word":
            raise
        return fit({"token_pattern": r"(?u)\b\w+\b"})


def joined(columns: list[list[object]]) -> list[str]:
    """One text per row from several text columns (missing values as empty text)."""
    return [" \n ".join("" if v is None else str(v) for v in parts) for parts in zip(*columns)]


# Counted characters of :func:`statistics` (punctuation and symbols that mark who wrote a text and how).
_COUNTED = "!?#@\"'.,:;-&$%*()/"
STATISTICS = ("characters", "words", "mean_word_length", "upper_share", "digit_share", "punctuation_share",
              "space_share", "non_ascii", "capital_words", "links", *(f"count {c}" for c in _COUNTED))


def statistics(texts: list[str]) -> np.ndarray:
    """Surface statistics of each text, ``[N, len(STATISTICS)]``: lengths, the shares of capitals,
    digits, punctuation and spaces, words in capitals, links and counts of common symbols. What a
    lower-casing tokenizer and TF-IDF lose (how a text is written) and trees use well: on the bench's
    tweets (which device sent a tweet), LightGBM on the TF-IDF SVD alone reaches 0.625 validation
    macro-F1, with these statistics 0.738 (``bench/shallow_features.py``). Counted over the texts'
    UTF-8 bytes at once in numpy (ASCII classes; a non-ASCII character counts once, by its lead byte)."""
    import re

    n = len(texts)
    out = np.zeros((n, len(STATISTICS)), dtype=np.float64)
    if not n:
        return out
    encoded = [t.encode("utf-8", "replace") for t in texts]
    ends = np.cumsum([len(b) for b in encoded])
    starts = ends - np.array([len(b) for b in encoded])
    data = np.frombuffer(b"".join(encoded) + b" ", dtype=np.uint8)

    def per_text(mask: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0], np.cumsum(mask[:-1], dtype=np.int64)])
        return (c[ends] - c[starts]).astype(np.float64)

    classes = {name: np.zeros(256, dtype=bool) for name in ("upper", "digit", "space", "alnum", "lead")}
    for b in range(128):
        ch = chr(b)
        classes["upper"][b], classes["digit"][b] = ch.isupper(), ch.isdigit()
        classes["space"][b], classes["alnum"][b] = ch.isspace(), ch.isalnum()
    classes["lead"][0xC0:] = True
    count = {name: per_text(table[data]) for name, table in classes.items()}
    chars = np.array([len(t) for t in texts], dtype=np.float64)
    words = np.array([len(t.split()) for t in texts], dtype=np.float64)
    capital = re.compile(r"\b[A-Z]{2,}\b")
    safe = np.maximum(chars, 1)
    out[:, 0], out[:, 1] = chars, words
    out[:, 2] = (chars - count["space"]) / np.maximum(words, 1)
    out[:, 3], out[:, 4] = count["upper"] / safe, count["digit"] / safe
    # punctuation: ASCII characters that are neither letters, digits nor spaces
    ascii_chars = chars - count["lead"]
    out[:, 5] = (ascii_chars - count["alnum"] - count["space"]) / safe
    out[:, 6], out[:, 7] = count["space"] / safe, count["lead"]
    out[:, 8] = [len(capital.findall(t)) for t in texts]
    out[:, 9] = [t.count("http") for t in texts]
    for j, c in enumerate(_COUNTED):
        out[:, 10 + j] = per_text(data == ord(c))
    return out
