"""A deterministic embedding for tests: hashed bag of words, no model to download.

Texts that share words point the same way, so similarity ranking is predictable.
"""

from __future__ import annotations

import math
import re
import zlib

DIMS = 64


def embed(texts: list[str]) -> list[list[float]]:
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vector[zlib.crc32(word.encode()) % DIMS] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vectors.append([v / norm for v in vector])
    return vectors
