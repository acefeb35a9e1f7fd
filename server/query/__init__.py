"""Queries over stored profiles and dumps: selectors, merged call trees, top tables, flame graphs, exports,
trends, goroutine views and leak suspects, the fleet overview."""
