"""RougeL F1 over jieba words, twice: as the reference implementation does it, and fixed.

compat: `RougeScorer(["rougeL"]).score(" ".join(jieba.lcut(ref)), " ".join(jieba.lcut(pred)))`
        exactly. rouge_score's default tokenizer keeps only runs of [a-z0-9], so every Chinese
        word is thrown away: Chinese answers are scored on their Latin letters and digits
        alone, and an all-Chinese answer scores 0 even against itself.
cjk:    the same LCS F1 from rouge_score, over the jieba words themselves (lower-cased,
        whitespace- and punctuation-only words dropped). This is what the metric means.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from functools import cache

import jieba
from rouge_score import rouge_scorer, tokenize, tokenizers

jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" chatter would cut the bar

SCORER_NAMES = ("cjk", "compat")
DEFAULT_SCORER = "cjk"


def _is_content(token: str) -> bool:
    """False for tokens made only of whitespace, punctuation or symbols (，。！ ...)."""
    return any(not unicodedata.category(ch).startswith(("Z", "P", "S", "C")) for ch in token)


def cjk_tokens(text: str) -> list[str]:
    return [tok.lower() for tok in jieba.lcut(text) if _is_content(tok)]


class JiebaTokenizer(tokenizers.Tokenizer):
    """rouge_score tokenizer that keeps jieba's words instead of only [a-z0-9] runs."""

    def tokenize(self, text: str) -> list[str]:
        return cjk_tokens(text)


@cache
def _compat_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@cache
def _cjk_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=JiebaTokenizer())


def compat_score(reference: str, prediction: str) -> float:
    """The reference implementation's number, bug for bug."""
    ref = " ".join(jieba.lcut(reference))
    pred = " ".join(jieba.lcut(prediction))
    return float(_compat_scorer().score(ref, pred)["rougeL"].fmeasure)


def cjk_score(reference: str, prediction: str) -> float:
    return float(_cjk_scorer().score(reference, prediction)["rougeL"].fmeasure)


def compat_blind(reference: str) -> bool:
    """True when compat sees no token at all in the reference, so it scores 0 whatever."""
    # rouge_score.tokenize.tokenize is what its DefaultTokenizer calls (no stemmer here).
    return not tokenize.tokenize(" ".join(jieba.lcut(reference)), None)


SCORERS: dict[str, Callable[[str, str], float]] = {"cjk": cjk_score, "compat": compat_score}


def score_all(reference: str, prediction: str) -> dict[str, float]:
    return {name: scorer(reference, prediction) for name, scorer in SCORERS.items()}
