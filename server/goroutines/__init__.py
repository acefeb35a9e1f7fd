"""Goroutine intelligence: parse ``goroutine?debug=2`` dumps, group them, find leaking stacks."""
