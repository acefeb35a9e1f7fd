"""The collector: scrape targets' /debug/pprof endpoints on a schedule and hand profiles to a sink.

A client of the ingest path: it imports no store, no API module and no SQL (an import contract in
pyproject.toml holds it to that). ``stackyard collect`` pushes to a remote server's
``POST /api/v1/ingest`` (:class:`collector.sinks.HttpPushSink`); ``stackyard serve`` plugs in a sink
that stores through its own ingest path (``stackyard.ingestsink``).
"""
