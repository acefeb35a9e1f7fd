"""Replicas of ``stackyard serve`` on one database: who is alive, which targets are whose, who runs upkeep."""
