"""Credentials written into URLs (``http://user:secret@host/``) kept out of what readers see.

A scrape target or webhook URL may carry a password in its userinfo, and the
scraper uses it (as HTTP basic authentication). Everything that shows such a
URL to someone who did not write it (the targets list to a ``read`` token,
health and error messages, logs) shows it redacted the way Go's
``url.URL.Redacted`` does: ``http://user:xxxxx@host/``. A userinfo without a
password is often a token on its own (``https://TOKEN@host/``), so it becomes
``xxxxx`` whole.

:func:`redact_credentials` works on any text, finding every ``scheme://``
authority in one left-to-right pass (no regular expression: the text may be
an error message of any length, and the pass is linear in it).
"""

from __future__ import annotations

REDACTED = "xxxxx"
#: Characters that end a URL's authority (RFC 3986), plus those that end a URL inside prose.
_AUTHORITY_ENDS = frozenset("/?#\\ \t\r\n\"'<>`")


def redact_userinfo(userinfo: str) -> str:
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{REDACTED}" if colon and user else REDACTED


def redact_credentials(text: str) -> str:
    """``text`` with the userinfo of every URL in it redacted; unchanged (the same object) if there is none."""
    if "@" not in text:
        return text
    out: list[str] = []
    done = 0  # text[:done] is already in out
    search = 0
    while True:
        found = text.find("://", search)
        if found < 0:
            break
        start = found + 3
        end = start
        at = -1
        while end < len(text) and text[end] not in _AUTHORITY_ENDS:
            if text[end] == "@":
                at = end
            end += 1
        if at >= 0:
            out.append(text[done:start])
            out.append(redact_userinfo(text[start:at]))
            done = at
        search = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)
