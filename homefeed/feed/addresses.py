"""Which client a request comes from, for the per-address rate limits.

The socket peer, unless the peer is a trusted proxy (HOMEFEED_TRUSTED_PROXIES): then the
X-Forwarded-For hops are read from the right (each proxy appends the address it saw) and
the first hop that is not itself a trusted proxy is the client. Anything left of that hop
was written by the client and is ignored, so it cannot pick its own bucket. By default no
proxy is trusted and X-Forwarded-For is never read.

An IPv6 client is counted by its /64: one host usually holds a whole /64, and counting per
address would give it 2^64 buckets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"
IPV6_PREFIX = 64


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDRs; ValueError naming the first bad entry."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or CIDR: {entry!r}") from None
    return tuple(networks)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The key the client is counted under: see the module's rules. `forwarded_for` holds the
    X-Forwarded-For header values in the order received (it is only read behind a trusted peer)."""
    current = _parse(peer)
    if current is None:
        return UNKNOWN
    if trusted and _trusted(current, trusted):
        hops = [h for value in forwarded_for for h in value.split(",")]
        for hop in reversed(hops):
            claimed = _parse(hop)
            if claimed is None:
                # Not written by a proper proxy: stop at the last address a trusted one gave.
                break
            current = claimed
            if not _trusted(current, trusted):
                break
    return _key(current)


def _parse(text: str | None) -> Address | None:
    if not text:
        return None
    text = text.strip()
    # "[v6]:port", "v4:port" and "[v6]" appear in the wild; plain addresses are the rule.
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted if network.version == address.version)


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)
