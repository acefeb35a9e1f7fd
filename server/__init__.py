"""Stackyard: a continuous profiling server for Go fleets."""

__version__ = "0.1.0"
