"""Length routing (LENGTH_ROUTER): max_tokens per prompt from its nearest tune-split questions.

The router file (JSON, written by `llmserve shape fit`) holds each tune question's jieba words
and its reference answer's length in the served model's tokens. A prompt's words are compared
to every example's by cosine over binary bag-of-words (numpy); the median reference length of
the `k` nearest, times `margin`, clamped to [min_tokens, the request's max], is its max_tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba
import numpy as np

from llmserve.errors import LlmserveError

FORMAT = "llmserve-length-router/1"


def words(text: str) -> set[str]:
    """The lowercased jieba words of `text`, without whitespace and punctuation-only tokens."""
    return {w.lower() for w in jieba.lcut(text) if w.strip() and any(c.isalnum() for c in w)}


@dataclass(frozen=True)
class LengthRouter:
    vocabulary: dict[str, int]
    matrix: np.ndarray  # examples x vocabulary, rows L2-normalized binary bag-of-words
    lengths: np.ndarray  # reference tokens per example
    k: int
    margin: float
    min_tokens: int

    @classmethod
    def build(
        cls, examples: list[tuple[set[str], int]], k: int, margin: float, min_tokens: int
    ) -> LengthRouter:
        vocabulary: dict[str, int] = {}
        for example_words, _ in examples:
            for word in sorted(example_words):
                vocabulary.setdefault(word, len(vocabulary))
        matrix = np.zeros((len(examples), max(len(vocabulary), 1)), dtype=np.float32)
        for row, (example_words, _) in enumerate(examples):
            for word in example_words:
                matrix[row, vocabulary[word]] = 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms == 0, 1.0, norms)
        lengths = np.array([length for _, length in examples], dtype=np.float64)
        return cls(vocabulary, matrix, lengths, k, margin, min_tokens)

    def predict(self, text: str) -> float:
        """The routed length for `text` before clamping: margin x median of the k nearest."""
        vector = np.zeros(self.matrix.shape[1], dtype=np.float32)
        for word in words(text):
            index = self.vocabulary.get(word)
            if index is not None:
                vector[index] = 1.0
        scores = self.matrix @ vector
        nearest = np.argsort(-scores, kind="stable")[: self.k]
        return float(np.median(self.lengths[nearest])) * self.margin

    def route(self, text: str, max_tokens: int) -> int:
        """max_tokens for `text`: the prediction clamped to [min_tokens, max_tokens]."""
        routed = int(np.ceil(self.predict(text)))
        return max(min(self.min_tokens, max_tokens), min(routed, max_tokens))

    def to_json(self) -> dict[str, Any]:
        inverse = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        examples = [
            {"words": [inverse[i] for i in np.flatnonzero(row)], "tokens": int(length)}
            for row, length in zip(self.matrix, self.lengths, strict=True)
        ]
        return {
            "format": FORMAT,
            "k": self.k,
            "margin": self.margin,
            "min_tokens": self.min_tokens,
            "examples": examples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LengthRouter:
        examples = [(set(e["words"]), int(e["tokens"])) for e in data["examples"]]
        return cls.build(examples, int(data["k"]), float(data["margin"]), int(data["min_tokens"]))


def load_router(path: Path) -> LengthRouter:
    """The router in `path`; a missing or malformed file is a LlmserveError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or not data["examples"]:
            raise ValueError(f"not a {FORMAT} file with examples")
        return LengthRouter.from_json(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LlmserveError(f"LENGTH_ROUTER={str(path)!r}: {exc}") from None
