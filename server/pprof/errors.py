"""Errors raised while reading a profile, each naming the stage that failed.

    ProfileError                 any problem with the bytes of a profile
    ├── DecompressError          "decompressing profile: ..." (bad or truncated gzip)
    ├── ProfileTooLargeError     the decompressed size passed the configured limit
    │   └── DecodeLimitError     "decoding profile: ..." a count or memory limit passed while parsing;
    │                            ``name`` says which (profile_samples, profile_decoded_bytes, ...)
    ├── ParseError               "parsing profile: ..." (not protobuf)
    └── MalformedProfileError    "malformed profile: ..." (protobuf, but not a valid pprof)

Callers that only need to reject input catch ``ProfileError``; the API maps
``ProfileTooLargeError`` (and so ``DecodeLimitError``) to 413 and the rest to 400.
"""


class ProfileError(ValueError):
    """The bytes given are not a usable pprof profile."""


class DecompressError(ProfileError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"decompressing profile: {detail}")


class ProfileTooLargeError(ProfileError):
    def __init__(self, limit: int, message: str | None = None) -> None:
        super().__init__(message or f"decompressing profile: decompressed size exceeds the limit of {limit} bytes")
        self.limit = limit


class DecodeLimitError(ProfileTooLargeError):
    """A limit of :class:`~server.pprof.limits.DecodeLimits` passed, found at the first record past it."""

    def __init__(self, name: str, limit: int, detail: str) -> None:
        super().__init__(limit, f"decoding profile: {detail} (the limit)")
        self.name = name
        self.detail = detail


class ParseError(ProfileError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"parsing profile: {detail}")


class MalformedProfileError(ProfileError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"malformed profile: {detail}")
