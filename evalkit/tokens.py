"""A deterministic stand-in tokenizer, for estimates made without calling the API.

Claude's tokenizers are not public. This one gives stable, plausible counts (about 4 characters per
token for words, one token per digit and punctuation mark). evalkit uses it to judge, offline and
reproducibly, whether a prompt prefix is long enough to be cached; the simulator bills with it.
Real counts differ (newer Claude tokenizers produce ~30% more tokens for the same text).
"""

from __future__ import annotations

import math
import re

_PIECES = re.compile(r"[^\W\d_]+|\d|[^\w\s]|_", re.UNICODE)


def count_tokens(text: str) -> int:
    total = 0
    for piece in _PIECES.findall(text):
        total += math.ceil(len(piece) / 4) if piece[0].isalpha() else 1
    return total
