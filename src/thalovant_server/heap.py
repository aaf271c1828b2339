"""The garbage collector of a server process that holds thousands of connections.

Python's cyclic collector walks every tracked object of a generation each time it runs; a
server has a large heap from startup (the framework, the ORM, the skills) that never becomes
garbage, and a herd of reconnecting clients allocates fast. :func:`settle_after_startup`,
called once the server listens, moves what startup built out of the collector's sight
(``gc.freeze``) and lets the young generation grow larger between collections, so that a herd
is not served between full walks of the heap. Garbage is still collected, later and in fewer,
larger young collections.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_after_startup"]

YOUNG_THRESHOLD = 10_000
"""Allocations (minus deallocations) between collections of the youngest generation (Python: 700)."""


def settle_after_startup() -> None:
    """Collect once, freeze the survivors, raise the young threshold (the older ones stay)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
