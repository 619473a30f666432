"""BM25 over the chunks, rebuilt in memory at start-up.

Lexical search is the half of hybrid retrieval that always works: it needs no Ollama, so it is also the
fallback when embeddings are unavailable. It is cheap enough to rebuild from the chunk texts every start (a
few ms for our corpus, about a second at 100k chunks), which avoids a second on-disk index that could drift
from Chroma.

The tokenizer is tuned for this domain: model sizes and memory figures ("70B", "48GB", "Q4_K_M", "3.5s") are
exactly what users type, so numbers are kept, "48GB" also yields "48" and "gb", and a light plural stemmer
makes "tokens" match "token" without a stemming dependency.
"""

from __future__ import annotations

import re

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

_TOKEN = re.compile(r"[a-z0-9]+(?:[._][a-z0-9]+)*")
_UNIT = re.compile(r"^(\d+(?:\.\d+)?)(gb|tb|mb|gbe|w|s|b|k|x|c)$")
_STOPWORDS = frozenset(STOPWORDS_EN) | {"s", "vs", "does", "do", "can", "much", "many", "would", "should"}


def _stem(token: str) -> str:
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


_CHIP = re.compile(r"^m\d$")
_CHIP_TIERS = frozenset({"pro", "max", "ultra"})


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens with stop words removed; compound tokens also emit their parts.

    "M3 Pro" also yields the joint token "m3pro": otherwise "m3" and "pro" each match half the corpus and the
    passage about that exact chip does not stand out.
    """
    tokens: list[str] = []
    words = _TOKEN.findall(text.lower())
    for index, raw in enumerate(words):
        if _CHIP.match(raw) and index + 1 < len(words) and words[index + 1] in _CHIP_TIERS:
            tokens.append(raw + words[index + 1])
        parts = [raw]
        if "_" in raw or ("." in raw and not re.fullmatch(r"\d+\.\d+", raw)):
            parts.extend(p for p in re.split(r"[._]", raw) if p)
        unit = _UNIT.match(raw)
        if unit:
            parts.extend(unit.groups())
        for part in parts:
            if part in _STOPWORDS:
                continue
            tokens.append(_stem(part))
    return tokens


class LexicalIndex:
    """BM25 (bm25s, Lucene variant) over a fixed list of texts; results are positions into that list."""

    def __init__(self, texts: list[str]) -> None:
        self.size = len(texts)
        self._bm25: bm25s.BM25 | None = None
        self._vocab: dict[str, int] = {}
        if not texts:
            return
        corpus_tokens = [tokenize(t) or ["\u2205"] for t in texts]
        bm25 = bm25s.BM25()
        bm25.index(corpus_tokens, show_progress=False)
        self._bm25 = bm25
        self._vocab = bm25.vocab_dict

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every text, or None when no query term occurs in the corpus."""
        if self._bm25 is None:
            return None
        ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not ids:
            return None
        return np.asarray(self._bm25.get_scores_from_ids(ids))

    def top(self, query: str, n: int) -> list[tuple[int, float]]:
        """Best `n` (position, score) pairs with a positive score, best first."""
        scores = self.scores(query)
        if scores is None or n <= 0:
            return []
        n = min(n, scores.shape[0])
        candidates = (
            np.argpartition(-scores, n - 1)[:n] if n < scores.shape[0] else np.arange(scores.shape[0])
        )
        ordered = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(int(i), float(scores[i])) for i in ordered if scores[i] > 0.0]
