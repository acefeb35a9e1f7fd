"""Pyroscope's protocol, so Grafana's Pyroscope data source and Pyroscope's clients work against Stackyard.

A translation layer beside :mod:`server.api`: Connect transport
(:mod:`server.pyroscope.connect`), the generated messages
(:mod:`server.pyroscope.proto`), and routers that turn Pyroscope's requests
into calls of the same query and ingest services the rest of the API uses.
It keeps no storage or query logic of its own.
"""
