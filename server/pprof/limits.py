"""What one decode may cost, enforced while it parses: records counted as they are read, memory budgeted.

A profile is cheap to send and can be expensive to hold: 255 KiB of gzip
inflate to 256 MiB of empty samples, and each 2-byte empty sample becomes 24
bytes of columns. Checking counts after the parse would mean paying for all of
that first, so the decoder counts samples, locations and sample types as it
reads them, and charges every byte its columns and string table reserve to a
budget, refusing at the first record past a limit; a top-level record longer
than ``record`` bytes is refused as soon as its length is read. Memory is then
bounded by what the limits accept, whatever the shape of the input.

Every decode function takes a :class:`DecodeLimits`; its defaults are the
server's defaults, so a caller that passes none is protected too.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The most sample types a profile may declare: Go uses at most 4, any pprof producer a handful.
MAX_SAMPLE_TYPES = 256
#: The longest top-level record (one sample, location, function, string...): real ones take bytes to kilobytes.
MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    samples: int = 1_000_000
    locations: int = 1_000_000
    sample_types: int = MAX_SAMPLE_TYPES
    memory: int = 256 * 1024 * 1024
    """Bytes the decoded columns and string table may take (the C decoder's own accounting)."""
    record: int = MAX_RECORD_BYTES
    """Bytes of one top-level record, refused as soon as its length is read (so it is never inflated)."""

    def describe(self, name: str) -> str:
        """The sentence that says a profile passed the limit ``name`` (a :class:`DecodeLimitError` name)."""
        if name == "profile_samples":
            return f"the profile has more than {self.samples} samples"
        if name == "profile_locations":
            return f"the profile has more than {self.locations} locations"
        if name == "profile_sample_types":
            return f"the profile declares more than {self.sample_types} sample types"
        if name == "profile_record_bytes":
            return f"one record of the profile (a sample, location, string...) is longer than {self.record} bytes"
        return f"the decoded profile needs more than {self.memory} bytes of memory"
