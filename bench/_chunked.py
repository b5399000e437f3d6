"""A real function with short held sections, for the scaling-law figures.

``chunked(block, rounds, loop)`` hashes ``block`` ``rounds`` times (hashlib
lets the GIL go for blocks over 2 KB) and runs a Python loop of ``loop``
steps between the updates (which holds it): held sections of tens of
microseconds, of a length set by ``loop``, between GIL-free stretches set by
the block's size.
"""

from __future__ import annotations

import hashlib


def chunked(block: bytes, rounds: int, loop: int) -> int:
    digest = hashlib.sha256()
    total = 0
    for _ in range(rounds):
        digest.update(block)
        for i in range(loop):
            total += i
    return total
