"""Objects made at start-up kept out of Python's full garbage collections.

A server process imports FastAPI, SQLAlchemy, pydantic, numpy, Alembic and its
own modules: about 150,000 container objects that live as long as the process.
Python's full (oldest-generation) collection walks every one of them, about
100 ms of CPU on the machines measured, and it comes again whenever the
objects that survived younger collections have grown by a quarter: every few
profiles while a churny service's first captures fill the caches. Whichever
profile or query runs at that moment pays for all of it. In ``bench/churn.py``
one such collection added ~8 ms to the mean of eleven first-pass profiles.

Once start-up is done, :func:`gc.freeze` moves every live object to the
permanent generation, which collections skip. A full collection then walks only
what ingest and queries made since: about 6,500 objects, ~2 ms, after a churn
service's first dozen profiles. The cost: a cycle of start-up objects that
becomes garbage later is never freed. Start-up objects are modules, classes,
settings and the store's engine, kept for the whole process. Garbage made
before the freeze is collected first, so it is not kept.

Objects made after the start are not frozen: a collector's scrape jobs, its
connection pools and the scrapes in flight. With 1,000 targets that is ~0.8
million objects, and a full collection of them stops the event loop for up to
0.9 s here. Python runs one after every 10 collections of the middle
generation, once a quarter more objects have reached the oldest one since the
last. A scrape in flight lives long enough for its objects to get there, and
they die soon after, so in a collector that quarter came every few seconds.
:func:`space_full_collections` asks for 100 (``gc_full_collection_every``).
In ``bench/scrape.py`` (1,000 targets x 6 kinds every 15 s, 180 s, the two
runs right after each other), that cut full collections from 32 (21.6 s of
pauses) to 3 (2.1 s). The p99 schedule lag fell from 0.68 to 0.30 s and CPU
from 0.55 to 0.44 cores, with the same resident set. Ingest leaves no cyclic
garbage (each profile leaves ~57 tracked objects), so spacing the full
collections does not let garbage pile up there.
"""

from __future__ import annotations

import gc


def freeze_startup_objects(enabled: bool = True) -> bool:
    """Collect, then freeze what is left, once a process: whether it froze now (``enabled`` is the
    ``gc_freeze`` setting).

    A process that starts a second app (tests, an embedding program) skips it: its start-up was frozen
    with the first, and freezing each time would pay a full collection per start and keep every
    discarded app's cycles."""
    if not enabled or gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def space_full_collections(every: int) -> None:
    """A full collection after ``every`` collections of the middle generation (Python's default: 10); the younger
    generations keep their thresholds. ``ValueError`` below 1 (0 would switch full collections off)."""
    if every < 1:
        raise ValueError(f"full collections must come after at least one middle one, not {every}")
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, every)
