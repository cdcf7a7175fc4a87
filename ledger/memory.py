"""Memory discipline of bulk reads and writes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of row tuples are made and dropped.

    They hold no cycles, but each allocation counts towards a collection that scans every live
    object: transposing fetched rows is several times faster without it (bench/RESULTS.md).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
