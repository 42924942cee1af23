"""Which pulled authors a viewer follows, as kept in Redis for every API process to reuse.

Finding them is a PostgreSQL statement. Kept only per process, every process asked it again for
every viewer it met (and again each time its own entry expired), so the statement ran on a
good share of reads. The entry lives in Redis beside the viewer's timeline (the same hash tag)
and is read in the same write as the timeline, so it costs a read no round trip of its own.

An entry is valid only for the follows version it was computed under (read before the
statement; follow and unfollow bump it) and for the set of pulled authors it was computed
against (its digest): anything else, and the reader asks PostgreSQL and writes a new entry.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

DIGEST_BYTES = 8
_ID = struct.Struct(">q")


def digest(pulled: Iterable[int]) -> bytes:
    """A short fingerprint of a set of pulled authors (order does not matter)."""
    body = b"".join(_ID.pack(i) for i in sorted(pulled))
    return hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest()


@dataclass(frozen=True, slots=True)
class Entry:
    """A viewer's pulled followees (themselves included when pulled) under a version and set."""

    digest: bytes
    version: bytes | None
    pulled: list[int]


def encode(entry: Entry) -> bytes:
    """digest, then the version's length (255: no version) and bytes, then 8-byte ids."""
    version = entry.version
    head = entry.digest + (bytes([255]) if version is None else bytes([len(version)]) + version)
    return head + struct.pack(f">{len(entry.pulled)}q", *entry.pulled)


def decode(raw: bytes | None) -> Entry | None:
    """An entry as stored, or None when missing or not one (then the reader asks PostgreSQL)."""
    if raw is None or len(raw) <= DIGEST_BYTES:
        return None
    size = raw[DIGEST_BYTES]
    start = DIGEST_BYTES + 1 + (0 if size == 255 else size)
    body = len(raw) - start
    if body < 0 or body % 8 or (size != 255 and size > 20):
        return None
    version = None if size == 255 else raw[DIGEST_BYTES + 1 : start]
    return Entry(raw[:DIGEST_BYTES], version, list(struct.unpack(f">{body // 8}q", raw[start:])))
