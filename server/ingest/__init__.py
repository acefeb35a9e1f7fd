"""Ingest: raw bytes in, stored rows out, for every way a profile or dump arrives (push, scrape, Pyroscope).

Nothing is written until the input has decoded and passed the store limits, so a refusal leaves the
database as it was. ``profile`` is the pprof path, ``dumps`` the goroutine dump path, ``workers`` runs
the pprof path in worker processes, ``storelimits`` holds the limits both paths apply.
"""
