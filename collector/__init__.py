"""The collector: scrape targets' /debug/pprof endpoints on a schedule and hand profiles to a sink.

It never touches the database; the in-process sink calls :func:`server.ingest.profile.ingest`,
the HTTP sink pushes to a remote server's ``POST /api/v1/ingest``.
"""
