"""URLs a caller chooses (a Mastodon instance, a Bluesky PDS): outside dev and test, Herald
fetches only https URLs without userinfo whose host resolves to public addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from herald_common.caller_urls import (
    RefusedURL,
    Resolver,
    checked_origin,
    forbidden_because,
    origin,
    resolve,
)


def resolving_to(*addresses: str) -> Resolver:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return addresses

    return resolver


async def refused(url: str, resolver: Resolver = resolve) -> str:
    with pytest.raises(RefusedURL) as raised:
        await checked_origin(url, environment="production", resolver=resolver)
    return raised.value.reason


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1", "loopback"),
        ("https://127.8.9.10:8443/", "loopback"),
        ("https://10.1.2.3", "private"),
        ("https://172.16.0.1", "private"),
        ("https://192.168.1.1", "private"),
        ("https://169.254.169.254", "link-local"),  # cloud metadata services
        ("https://0.0.0.0", "unspecified"),
        ("https://224.0.0.1", "multicast"),
        ("https://240.0.0.1", "reserved"),
        ("https://100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("https://[::1]", "loopback"),
        ("https://[::]", "unspecified"),
        ("https://[fe80::1]", "link-local"),
        ("https://[fc00::1]", "private"),
        ("https://[ff02::1]", "multicast"),
        ("https://[::ffff:127.0.0.1]", "loopback"),
        ("https://[::ffff:169.254.169.254]", "link-local"),
        ("https://[::ffff:10.0.0.1]", "private"),
        ("https://[2002:a00:1::]", "private"),  # 6to4 around 10.0.0.1
        ("https://[64:ff9b::7f00:1]", "loopback"),  # NAT64 around 127.0.0.1
    ],
)
async def test_addresses_inside_any_network_are_refused(url: str, why: str) -> None:
    reason = await refused(url)
    assert why in reason


async def test_a_host_name_is_refused_when_it_resolves_to_loopback() -> None:
    # The real resolver, through the event loop: localhost is 127.0.0.1 (and ::1).
    assert "loopback" in await refused("https://localhost")


async def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    reason = await refused(
        "https://mastodon.example", resolver=resolving_to("93.184.215.14", "10.0.0.7")
    )
    assert reason == "points to a private address: mastodon.example (10.0.0.7)"


async def test_a_public_host_is_accepted_as_its_normalised_origin() -> None:
    public = resolving_to("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert (
        await checked_origin(
            "HTTPS://Mastodon.Example:443/", environment="production", resolver=public
        )
        == "https://mastodon.example"
    )
    assert (
        await checked_origin(
            "https://mastodon.example:8443", environment="production", resolver=public
        )
        == "https://mastodon.example:8443"
    )
    assert await checked_origin("https://93.184.215.14", environment="production") == (
        "https://93.184.215.14"
    )


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    async def nowhere(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    assert "does not resolve" in await refused("https://nowhere.invalid", resolver=nowhere)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://mastodon.example", "must use https"),
        ("ftp://mastodon.example", "must use https, not ftp"),
        ("file:///etc/passwd", "must use https, not file"),
        ("gopher://mastodon.example", "must use https, not gopher"),
        ("https://user:secret@mastodon.example", "user name or password"),
        ("https://user@mastodon.example", "user name or password"),
        ("https://mastodon.example@127.0.0.1", "user name or password"),
        ("https://mastodon.example/some/path", "only the server"),
        ("https://mastodon.example/?q=1", "only the server"),
        ("https://", "has no host"),
        ("https://mastodon.example:99999", "not a valid URL"),
        # Host names an HTTP client cannot send (found by the fuzzer: a 500).
        ("https://\x01p%)\x13S\u00f74.example", "host name that is not valid"),
        ("https://mast'odon.example", "host name that is not valid"),
        ("https://-mastodon.example", "host name that is not valid"),
        ("https://mastodon-.example", "host name that is not valid"),
        ("https://" + "a" * 64 + ".example", "host name that is not valid"),
        ("https://a..b", "host name that is not valid"),
        ("https://\U0008a921\u00cf", "host name that is not valid"),  # no IDNA 2008 name
        ("https://xn--gda50854i", "host name that is not valid"),  # nor in its xn-- form
    ],
)
async def test_urls_that_are_not_plain_https_servers_are_refused(url: str, why: str) -> None:
    public = resolving_to("93.184.215.14")
    assert why in await refused(url, resolver=public)


async def test_dev_and_test_allow_local_http_servers_but_never_userinfo() -> None:
    for environment in ("dev", "test"):
        assert (
            await checked_origin("http://127.0.0.1:8080/", environment=environment)
            == "http://127.0.0.1:8080"
        )
        with pytest.raises(RefusedURL):
            await checked_origin("http://u:p@127.0.0.1:8080", environment=environment)
        with pytest.raises(RefusedURL):
            await checked_origin("ftp://127.0.0.1", environment=environment)


def test_international_host_names_are_kept_in_their_ascii_form() -> None:
    assert origin("https://M\u00fcnchen.example", allow_http=False) == (
        "https://xn--mnchen-3ya.example"
    )


def test_origin_is_one_spelling_per_server() -> None:
    spellings = [
        "https://Mastodon.Example",
        "https://mastodon.example/",
        "https://mastodon.example:443",
        "https://mastodon.example.",
        " https://MASTODON.example ",
    ]
    assert {origin(url, allow_http=False) for url in spellings} == {"https://mastodon.example"}
    assert origin("https://bücher.example", allow_http=False) == "https://xn--bcher-kva.example"
    assert origin("https://[0:0:0:0:0:0:0:1]", allow_http=False) == "https://[::1]"


def test_public_addresses_are_not_forbidden() -> None:
    for text in ("93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"):
        assert forbidden_because(ipaddress.ip_address(text)) is None
