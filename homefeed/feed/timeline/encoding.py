"""The stored form of a bounded id list: one Redis string of fixed-width ids behind an optional header.

Post ids are stored as 7-byte big-endian integers (ids < 2**53 fit): fixed width, so
byte order is numeric order, a list is a plain string that fan-out extends with a
native `APPEND`, and an entry costs its 7 bytes.

The header is present exactly when the length is 1 modulo 7: a flags byte (BUILT: a
rebuild wrote this list) and the list's floor, a 7-byte id. A BUILT list vouches for
every post at or above its floor; a floor of 0 means it holds all history. A list
without a header (new, or created by a write that arrived before the rebuild)
vouches for nothing and is rebuilt on read.

Appends may arrive out of order, twice, or late (a slow worker, a redone job) below
the floor: decoding sorts, deduplicates and drops what lies below the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ID_BYTES = 7
BUILT = 1
HEADER_BYTES = 1 + ID_BYTES

Ids = npt.NDArray[np.int64]
_EMPTY: Ids = np.zeros(0, dtype=np.int64)
_PAD = bytes(8 - ID_BYTES)
_ID_MASK = np.int64((1 << (8 * ID_BYTES)) - 1)


def encode_id(post_id: int) -> bytes:
    """A post id as stored in a list."""
    return post_id.to_bytes(ID_BYTES, "big")


def decode_id(member: bytes) -> int:
    """The post id of a stored entry."""
    return int.from_bytes(member, "big")


@dataclass(frozen=True, slots=True)
class Blob:
    """A decoded list: flags (None without a header), floor, and distinct ids at or above it, ascending."""

    flags: int | None
    floor: int
    ids: Ids

    @property
    def built(self) -> bool:
        return self.flags is not None and bool(self.flags & BUILT)

    @property
    def whole(self) -> bool:
        """Whether the list holds all history (nothing older exists)."""
        return self.built and self.floor == 0

    def with_ids(self, ids: Ids) -> Blob:
        """The same list holding ids (those below its floor are dropped)."""
        return Blob(self.flags, self.floor, ids[ids >= self.floor] if self.floor else ids)


def decode(raw: bytes | None) -> Blob:
    """Parse a stored list (None for a missing key)."""
    if not raw:
        return Blob(None, 0, _EMPTY)
    flags: int | None = None
    floor = 0
    if len(raw) % ID_BYTES == 1:
        flags, floor, start = raw[0], int.from_bytes(raw[1:HEADER_BYTES], "big"), HEADER_BYTES
    else:
        raw, start = _PAD + raw, len(_PAD)
    n = (len(raw) - start) // ID_BYTES
    # Each id is read as the 8-byte word ending with it (strides of 7 over the bytes, the word's
    # first byte belonging to what precedes it), then masked: no copy into a padded array.
    words = np.ndarray((n,), dtype=">i8", buffer=raw, offset=start - len(_PAD), strides=(ID_BYTES,))
    # Every read of a timeline decodes it whole, so each numpy call counts (each has a fixed
    # cost whatever the length): mask while converting, and cut the floor by bisection.
    ids = np.bitwise_and(words, _ID_MASK, dtype=np.int64)
    # Appends mostly arrive in order: sort and deduplicate only when they did not.
    if n > 1 and not np.greater(ids[1:], ids[:-1]).all():
        ids.sort()
        ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
    if floor and n and ids[0] < floor:
        ids = ids[int(np.searchsorted(ids, floor)) :]
    return Blob(flags, floor, ids)


def encode(blob: Blob) -> bytes:
    """A list as stored: the header (if it has flags) and its ids in ascending order."""
    body = np.ascontiguousarray(blob.ids.astype(">u8")).view(np.uint8).reshape(-1, 8)[:, 8 - ID_BYTES :]
    head = b"" if blob.flags is None else bytes([blob.flags]) + blob.floor.to_bytes(ID_BYTES, "big")
    return head + body.tobytes()


def built(ids: Ids, *, whole_history: bool) -> Blob:
    """A freshly built list of ids (ascending): complete to the beginning, or down to its oldest id."""
    floor = 0 if whole_history or len(ids) == 0 else int(ids[0])
    return Blob(BUILT, floor, ids)


def bounded(blob: Blob, size: int) -> Blob:
    """Keep the newest `size` ids; the floor rises to the oldest one kept."""
    if len(blob.ids) <= size:
        return blob
    kept = blob.ids[-size:]
    return Blob(blob.flags, max(blob.floor, int(kept[0])), kept)


def max_bytes(size: int) -> int:
    """Past this length an appended-to list of `size` ids is rewritten to its newest `size` ids.

    The slack lets a trim happen once per many appends instead of on every one.
    """
    return HEADER_BYTES + (size + max(8, size // 2)) * ID_BYTES
