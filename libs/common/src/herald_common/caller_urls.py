"""Addresses a caller chooses and Herald then fetches (a Mastodon instance, a Bluesky PDS).

Herald sends requests, and sometimes the person's credentials, to these URLs from inside its
own network, so outside dev and test a caller's URL must be https, carry no userinfo, and have
a host whose every resolved address is public: never loopback, private, link-local,
multicast, reserved or unspecified (IPv4 and IPv6, unwrapping IPv4 embedded in IPv6), which
would let a caller make Herald probe its own network or a cloud metadata service (SSRF).

The URL is checked when it is given (:func:`checked_origin`), and every connection is checked
again when it is made (:class:`GuardedResolver`, under the shared HTTP client's connection
pool): the name is resolved once for the connection, every answer must be public, and the
connection goes to those checked addresses while TLS still verifies the certificate for the
name (SNI included). So a name that answers a public address when checked and 127.0.0.1 or
169.254.169.254 when fetched (DNS rebinding) gets no request. Herald's client never follows
redirects; one that did would make a new connection, checked the same way.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import idna
from aiohttp.abc import AbstractResolver, ResolveResult

from herald_common.logging import get_logger

log = get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS = {"https": 443, "http": 80}
# Where IPv6 carries an IPv4 address that decides where the packet really goes: NAT64's
# well-known prefix (RFC 6052) translates 64:ff9b::a.b.c.d to a.b.c.d.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# Environments where Herald talks to local fakes and developers' own servers.
LOCAL_ENVIRONMENTS = frozenset({"dev", "test"})


class RefusedURL(ValueError):
    """The URL may not be used; ``reason`` completes "The address ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def origin(url: str, *, allow_http: bool) -> str:
    """``scheme://host[:port]`` of a URL that names only a server: lowercased, the host in
    IDNA (ASCII) form, the scheme's default port dropped. One spelling per server, so it can
    key what Herald keeps per instance."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise RefusedURL(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RefusedURL(f"must use https, not {scheme or 'no scheme'}")
    if scheme == "http" and not allow_http:
        raise RefusedURL("must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise RefusedURL("must not contain a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise RefusedURL("must name only the server (no path, query or fragment)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RefusedURL("has no host")
    host = _ascii_host(host)
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        shown += f":{port}"
    return f"{scheme}://{shown}"


def _ascii_host(host: str) -> str:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    try:
        # IDNA 2008 with UTS 46 mapping, as browsers, httpx and aiohttp (yarl) read names. It
        # takes only letters, digits and inner hyphens per label (63 at most, 253 in all) and
        # decodes and checks an xn-- label too; the stdlib's IDNA 2003 codec let through
        # control characters, %, quotes and labels the HTTP clients then refused (500s, found
        # by the fuzzer).
        return idna.encode(host, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise RefusedURL("has a host name that is not valid") from None


def forbidden_because(address: IPAddress) -> str | None:
    """Why Herald must not connect to ``address``, or ``None`` for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return forbidden_because(embedded)
    for reason, flagged in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flagged:
            return f"a {reason} address"
    if not address.is_global:  # e.g. 100.64.0.0/10, shared address space for carrier NAT
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48
        return address.sixtofour
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, through the event loop's ``getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def checked_origin(
    url: str,
    *,
    environment: str,
    resolver: Resolver = resolve,
    resolve_within: float = 10.0,
) -> str:
    """The URL's :func:`origin`, once it is safe for Herald to fetch.

    In dev and test, http and local addresses are allowed (Herald talks to fakes on
    127.0.0.1 there); userinfo and other schemes never are. Elsewhere the host must resolve,
    within ``resolve_within`` seconds, to public addresses only. Raises :class:`RefusedURL`."""
    local = environment in LOCAL_ENVIRONMENTS
    result = origin(url, allow_http=local)
    if local:
        return result
    parts = urlsplit(result)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        async with asyncio.timeout(resolve_within):
            addresses = await resolver(host, port)
    except (OSError, UnicodeError):
        raise RefusedURL(f"has a host name that does not resolve ({host})") from None
    except TimeoutError:
        raise RefusedURL(f"has a host name that did not resolve in time ({host})") from None
    if not addresses:
        raise RefusedURL(f"has a host name that does not resolve ({host})")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        why = forbidden_because(address)
        if why is not None:
            shown = host if host == address.compressed else f"{host} ({address.compressed})"
            raise RefusedURL(f"points to {why}: {shown}")
    return result


class ForbiddenAddress(OSError):
    """A connection Herald refused to make: the name resolved to a non-public address."""

    def __init__(self, reason: str) -> None:
        # With an errno, aiohttp's connection error shows the reason rather than "[None]".
        super().__init__(errno.EPERM, reason)


class GuardedResolver(AbstractResolver):
    """The resolver under Herald's outbound connection pool outside dev and test.

    aiohttp asks it for the addresses of each new connection and connects to what it answers,
    with SNI and certificate checks for the name; so refusing here, when any answer is not
    public, pins every connection to addresses that were checked, whatever the name answered
    before. ``trusted_hosts`` are the operator's own (the platform addresses in settings, e.g.
    a self-hosted Bot API server in the cluster) and resolve unchecked. An address written in
    the URL itself is never resolved, so it is judged where the URL is given
    (:func:`checked_origin`); it cannot change afterwards."""

    def __init__(self, inner: AbstractResolver, trusted_hosts: frozenset[str]) -> None:
        self._inner = inner
        self._trusted = frozenset(h.rstrip(".").lower() for h in trusted_hosts)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        name = host.rstrip(".").lower()
        if name in self._trusted:
            return answers
        for answer in answers:
            address = ipaddress.ip_address(answer["host"].split("%", 1)[0])
            why = forbidden_because(address)
            if why is not None:
                log.warning(
                    "connection refused: address not public",
                    host=name,
                    address=address.compressed,
                    reason=why,
                )
                raise ForbiddenAddress(f"{name} points to {why} ({address.compressed})")
        return answers

    async def close(self) -> None:
        await self._inner.close()
