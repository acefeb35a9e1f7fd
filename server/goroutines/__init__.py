"""Goroutine dumps as data: parse ``goroutine?debug=2`` text and group goroutines by state and stack. Pure, no I/O.

The store keeps dumps as these groups and queries read them back (``server.query.dumpviews``, ``server.query.leaks``).
"""
