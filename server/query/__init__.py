"""Queries over stored profiles: selectors, merged call trees, top tables, flame graphs, exports."""
