"""A deterministic stand-in for nomic-embed-text.

Hashed character n-grams and word unigrams folded into 768 dimensions and L2-normalised: the same text always
gives the same vector and texts sharing words and fragments land near each other, which is all retrieval
tests need. The nomic task prefix (`search_document: ` / `search_query: `) is stripped first so that a
document and a query about the same thing are close, as they are with the real model.
"""

from __future__ import annotations

import hashlib
import math
import re

DIMENSION = 768
_PREFIXES = ("search_document: ", "search_query: ", "clustering: ", "classification: ")
_WORD = re.compile(r"[a-z0-9]+")


def _bucket(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % DIMENSION, (1.0 if (value >> 63) & 1 else -1.0)


def embed_text(text: str) -> list[float]:
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    vector = [0.0] * DIMENSION
    words = _WORD.findall(text.lower())
    for word in words:
        index, sign = _bucket("w:" + word)
        vector[index] += 2.0 * sign
        padded = f" {word} "
        for i in range(len(padded) - 2):
            index, sign = _bucket("g:" + padded[i : i + 3])
            vector[index] += sign
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]
