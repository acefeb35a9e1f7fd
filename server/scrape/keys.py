"""The idempotency key of one scrape, derived the same way by every sink: pure, no I/O.

A scraping collector cannot know whether a write it retries was stored just
before the connection broke, so each scraped profile carries a key the store
remembers (:mod:`server.store.idempotency`): a target scrapes each kind at most
once per timestamp, which makes (target, kind, time) a key no other scrape has.
"""

from __future__ import annotations


def scrape_key(target_key: str, kind: str, time_ns: int) -> str:
    """The key of one scrape: a target scrapes each kind at most once per timestamp."""
    return f"scrape:{target_key}|{kind}|{time_ns}"
