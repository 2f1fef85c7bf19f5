"""Process settings for the long-running hub."""

import gc

# Python's default (700 allocations) runs a young-generation collection every few requests
# under load, and the occasional full collection stalls every request in flight: measured in
# bench/web_votes.py, p99 latency 108 ms with the default, 57 ms with these.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_for_serving() -> None:
    """Call once start-up is done: what was allocated until then is never collected again."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
