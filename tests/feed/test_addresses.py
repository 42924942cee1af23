"""homefeed.feed.addresses: the address a client is counted under, and nobody can choose it
by sending X-Forwarded-For."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homefeed.feed.addresses import UNKNOWN, client_address, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 192.168.1.5, fd00::/8")
header_text = st.text(alphabet="0123456789abcdef.:,[] xX", max_size=80)


@given(peer=st.ip_addresses(v=4).map(str), forwarded=st.lists(header_text, max_size=3))
def test_without_trusted_proxies_the_header_is_never_read(peer: str, forwarded: list[str]) -> None:
    assert client_address(peer, forwarded, ()) == peer


@given(forwarded=st.lists(header_text, max_size=3))
def test_an_untrusted_peer_cannot_speak_for_anyone_else(forwarded: list[str]) -> None:
    # Proxies are trusted, but this peer is not one of them: its header means nothing.
    assert client_address("203.0.113.9", forwarded, PROXIES) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_address_it_saw_is_the_client() -> None:
    assert client_address("10.1.2.3", ["198.51.100.7"], PROXIES) == "198.51.100.7"


@given(claimed=st.lists(header_text, max_size=4))
def test_what_the_client_wrote_left_of_the_proxys_entry_is_ignored(claimed: list[str]) -> None:
    # The client sends any X-Forwarded-For it likes; the trusted proxy appends the address it
    # saw. The rightmost untrusted hop wins, whatever the client prepended.
    forwarded = [", ".join([*claimed, "198.51.100.7"])]
    assert client_address("10.1.2.3", forwarded, PROXIES) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    # client -> 192.168.1.5 -> 10.9.9.9 -> us; a spoofed 1.1.1.1 first.
    chain = ["1.1.1.1, 198.51.100.7", "192.168.1.5"]  # two header lines, in order received
    assert client_address("10.9.9.9", chain, PROXIES) == "198.51.100.7"


def test_a_spoofed_private_address_left_of_the_real_one_is_ignored() -> None:
    # A client pretending to be one of the trusted proxies, or hiding behind one.
    assert client_address("10.1.2.3", ["10.0.0.1, 203.0.113.9"], PROXIES) == "203.0.113.9"


def test_garbage_where_a_proxy_should_have_written_stops_at_the_last_trusted_hop() -> None:
    assert client_address("10.1.2.3", ["198.51.100.7, nonsense"], PROXIES) == "10.1.2.3"
    assert client_address("10.1.2.3", [""], PROXIES) == "10.1.2.3"
    assert client_address("10.1.2.3", [], PROXIES) == "10.1.2.3"


def test_all_hops_trusted_gives_the_furthest_one() -> None:
    assert client_address("10.1.2.3", ["10.7.7.7, 192.168.1.5"], PROXIES) == "10.7.7.7"


def test_ports_and_brackets_are_tolerated() -> None:
    assert client_address("10.1.2.3", ["198.51.100.7:5555"], PROXIES) == "198.51.100.7"
    assert client_address("10.1.2.3", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::/64"


def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    one = client_address("2001:db8:1:2::1", [], ())
    other = client_address("2001:db8:1:2:ffff::9", [], ())
    assert one == other == "2001:db8:1:2::/64"
    assert client_address("2001:db8:1:3::1", [], ()) != one
    assert client_address("::ffff:198.51.100.7", [], ()) == "198.51.100.7"


def test_no_peer_is_unknown() -> None:
    assert client_address(None, ["198.51.100.7"], PROXIES) == UNKNOWN
    assert client_address("not-an-ip", [], ()) == UNKNOWN


def test_trusted_proxies_parse_addresses_and_cidrs() -> None:
    parsed = parse_networks(" 10.0.0.0/8 ,, 192.168.1.5, fd00::/8 ")
    assert parsed == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.5/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks("10.0.0.0/33")
