"""The network policy: which addresses Stackyard may connect to (scrapes, webhooks) and whom it believes.

``policy`` decides what an address reaches and whether it is allowed; ``guard`` applies that decision at
connect time, after DNS; ``proxies`` names the reverse proxies whose forwarded headers are trusted;
``redact`` keeps credentials embedded in URLs out of what read tokens and logs see.
"""
