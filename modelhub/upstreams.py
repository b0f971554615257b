"""Where the hub may send a request (gateway calls, readiness probes), and the one shared async HTTP client.

**Allow-list.** ``GATEWAY_UPSTREAM_ALLOWLIST`` holds host names, IP addresses and CIDR ranges; ``*``
admits any *public* (globally routable) address. A host is resolved once (cached
:data:`DNS_CACHE_SECONDS`) and every address it resolves to must pass: a name listed by name
passes whatever it resolves to (the operator vouched for it); otherwise each address must be
inside a listed range, or public under ``*``. Private, loopback, link-local, multicast and
reserved addresses are refused unless listed (or ``GATEWAY_ALLOW_PRIVATE_UPSTREAMS``, which the
tests and the benchmarks set for their stub on 127.0.0.1). The request is then sent to the
checked address (``Host`` header and TLS SNI keep the name), so a DNS answer that changes between
the check and the connection (rebinding) cannot redirect it. The readiness probe applies the same
check (:func:`check_sync`).

**Client.** One ``aiohttp.ClientSession`` per event loop (a server process has one), with connection
pooling (``GATEWAY_MAX_CONNECTIONS``), no redirects, no proxy variables from the environment.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

DNS_CACHE_SECONDS = 30.0
_dns: dict[tuple[str, int], tuple[float, list[str]]] = {}


class UpstreamRefused(Exception):
    """The upstream host is not allowed (the message says why)."""


@dataclass(frozen=True)
class Target:
    """A checked upstream: ``url`` goes to ``address``; ``host_header`` and ``sni`` keep the name."""

    url: str
    host_header: str
    sni: str | None

    @functools.cached_property
    def parsed_url(self) -> Any:
        """``url`` parsed once (yarl, already encoded), for the HTTP client."""
        import yarl

        return yarl.URL(self.url, encoded=True)


def _rules() -> tuple[frozenset[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network], bool]:
    names, networks, any_public = set(), [], False
    for entry in settings.GATEWAY_UPSTREAM_ALLOWLIST:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            any_public = True
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return frozenset(names), networks, any_public


def _address_allowed(address: str, networks: list, any_public: bool) -> bool:
    ip = ipaddress.ip_address(address)
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if any(ip in network for network in networks):
        return True
    if settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS:
        return True
    return any_public and ip.is_global and not ip.is_multicast


def _checked(host: str, addresses: list[str]) -> str:
    names, networks, any_public = _rules()
    if host.lower().rstrip(".") in names:
        return addresses[0]
    for address in addresses:
        if not _address_allowed(address, networks, any_public):
            raise UpstreamRefused(
                f"Upstream host {host!r} resolves to {address}, which GATEWAY_UPSTREAM_ALLOWLIST does not allow "
                "(private, loopback and reserved ranges must be listed explicitly)."
            )
    return addresses[0]


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _cached(host: str, port: int) -> list[str] | None:
    entry = _dns.get((host, port))
    if entry and entry[0] > time.monotonic():
        return entry[1]
    return None


def _remember(host: str, port: int, infos: list[Any]) -> list[str]:
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UpstreamRefused(f"Upstream host {host!r} does not resolve.")
    if len(_dns) > 10_000:
        _dns.clear()
    _dns[(host, port)] = (time.monotonic() + DNS_CACHE_SECONDS, addresses)
    return addresses


def _target(scheme: str, host: str, port: int, path: str, address: str) -> Target:
    default_port = 443 if scheme == "https" else 80
    shown = f"[{address}]" if ":" in address else address
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == default_port else f"{name}:{port}"
    return Target(
        url=f"{scheme}://{shown}:{port}{path}",
        host_header=host_header,
        sni=host if scheme == "https" and _literal(host) is None else None,
    )


_targets: dict[tuple[str, str, int, str], tuple[float, Target]] = {}


async def check(scheme: str, host: str, port: int, path: str = "") -> Target:
    """The checked target for ``scheme://host:port{path}`` (raises :class:`UpstreamRefused`); a passed
    check is remembered :data:`DNS_CACHE_SECONDS`, like the resolution it rests on."""
    memo = (scheme, host, port, path)
    entry = _targets.get(memo)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    target = await _check(scheme, host, port, path)
    if len(_targets) > 10_000:
        _targets.clear()
    _targets[memo] = (time.monotonic() + DNS_CACHE_SECONDS, target)
    return target


def forget_checks() -> None:
    """Drop remembered resolutions and checks (tests change the allow-list)."""
    _targets.clear()
    _dns.clear()


async def _check(scheme: str, host: str, port: int, path: str = "") -> Target:
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = _cached(host, port)
        if addresses is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise UpstreamRefused(f"Upstream host {host!r} does not resolve: {exc}.") from None
            addresses = _remember(host, port, infos)
    return _target(scheme, host, port, path, _checked(host, addresses))


def check_sync(scheme: str, host: str, port: int, path: str = "") -> Target:
    """:func:`check` for synchronous callers (the readiness probe)."""
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = _cached(host, port)
        if addresses is None:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise UpstreamRefused(f"Upstream host {host!r} does not resolve: {exc}.") from None
            addresses = _remember(host, port, infos)
    return _target(scheme, host, port, path, _checked(host, addresses))


@functools.lru_cache(maxsize=1024)
def split_url(url: str) -> tuple[str, str, int, str]:
    """``https://api.openai.com/v1`` -> ("https", "api.openai.com", 443, "/v1")."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme
    if scheme not in ("http", "https") or not parsed.host:
        raise UpstreamRefused(f"Upstream URL {url!r} must be http(s)://host[:port][/path].")
    port = parsed.port or (443 if scheme == "https" else 80)
    return scheme, parsed.host, port, parsed.path.rstrip("/")


_sessions: dict[int, Any] = {}


def session() -> Any:
    """This event loop's shared ``aiohttp.ClientSession`` (created on first use).

    aiohttp rather than httpx for the gateway: httpcore's pool re-scans every connection on every
    request start and end (``_assign_requests_to_connections``), which ``bench/gateway.py`` measured at
    ~20 ms of CPU per call with 64 calls in flight; aiohttp's connector keeps that cost flat.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    found = _sessions.get(id(loop))
    if found is None or found.closed:
        for key in [k for k, c in _sessions.items() if c.closed]:
            _sessions.pop(key, None)
        connector = aiohttp.TCPConnector(
            limit=settings.GATEWAY_MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=30, use_dns_cache=False
        )
        found = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, trust_env=False, skip_auto_headers=("User-Agent",)
        )
        _sessions[id(loop)] = found
    return found


async def close_session() -> None:
    """Close this event loop's session (a server or command that ends its loop calls this)."""
    found = _sessions.pop(id(asyncio.get_running_loop()), None)
    if found is not None and not found.closed:
        await found.close()


@functools.lru_cache(maxsize=256)
def timeouts(timeout: float, *, stream: bool) -> Any:
    """``networking.timeout`` per attempt: the whole answer, or (streams) each gap between chunks."""
    import aiohttp

    connect = min(timeout, 10.0)
    if stream:
        return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=timeout)
    return aiohttp.ClientTimeout(total=timeout, connect=connect)
