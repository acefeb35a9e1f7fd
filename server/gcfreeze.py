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
