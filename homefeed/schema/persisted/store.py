"""The registered APQ documents of one process: a least-recently-used map bounded in bytes."""

from __future__ import annotations

from collections import OrderedDict


class DocumentStore:
    """Hash → document text, holding at most `capacity` bytes of both (oldest use evicted first).

    Bounded by size rather than by count: registration is open to any client, and a count
    bound would let a few huge documents take as much memory as the count allows.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._documents: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, key: str) -> str | None:
        """The document registered under key, marked as just used; None if unknown or evicted."""
        text = self._documents.get(key)
        if text is not None:
            self._documents.move_to_end(key)
        return text

    def put(self, key: str, text: str) -> None:
        """Register text under key, evicting the least recently used documents to make room."""
        cost = _cost(key, text)
        if cost > self.capacity:
            return
        old = self._documents.pop(key, None)
        if old is not None:
            self.size -= _cost(key, old)
        self._documents[key] = text
        self.size += cost
        while self.size > self.capacity:
            evicted, evicted_text = self._documents.popitem(last=False)
            self.size -= _cost(evicted, evicted_text)


def _cost(key: str, text: str) -> int:
    # UTF-8 length: what the text costs on the wire, close to what it costs in memory.
    return len(key) + len(text.encode())
