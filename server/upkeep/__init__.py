"""Background upkeep of the store: rollups on a schedule (``jobs``), then retention and garbage collection."""
