"""Access control: API tokens with scopes, one policy for every route, and the login cookie.

The policy is decided centrally from the method and path (:mod:`server.auth.policy`)
by one ASGI middleware (:mod:`server.auth.middleware`), so a router added later
is covered without touching it: a new ``GET /api/...`` needs ``read``, a new
mutating route needs ``admin`` until the policy says otherwise.
"""
