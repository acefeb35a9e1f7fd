"""The composition root: the ``stackyard`` command wires the server, the store and the collector together.

Only this package imports both ``server`` and ``collector``; the server never
imports the collector (it knows a scraper only by its protocol).
"""
