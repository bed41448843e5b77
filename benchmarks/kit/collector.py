"""Python's garbage collector held off while something is measured or must not be collected by chance."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process inside the block.

    A bench's clients: a pause would delay every client's packets at once and look like a stall
    of the server. A test: only an explicit collection frees reference cycles, as in a
    long-running edge whose collector seldom reaches its oldest generation.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
