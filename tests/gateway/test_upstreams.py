"""The upstream allow-list (``modelhub.upstreams``): which addresses pass, and that the request goes to the
address that was checked (so a DNS answer that changes afterwards cannot redirect it)."""

from __future__ import annotations

import asyncio

import pytest

from modelhub import upstreams


@pytest.fixture(autouse=True)
def _forget():
    upstreams.forget_checks()
    yield
    upstreams.forget_checks()


def check(scheme: str, host: str, port: int = 80, path: str = "/v1"):
    return asyncio.run(upstreams.check(scheme, host, port, path))


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.5", "192.168.1.1", "169.254.169.254", "::1", "::ffff:10.0.0.1", "fd00::1", "0.0.0.0"],
)
def test_private_loopback_link_local_and_reserved_addresses_are_refused_under_star(settings, host):
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["*"]
    settings.GATEWAY_ALLOW_PRIVATE_UPSTREAMS = False
    with pytest.raises(upstreams.UpstreamRefused, match="GATEWAY_UPSTREAM_ALLOWLIST"):
        check("http", host)


def test_public_addresses_pass_under_star_and_are_what_is_connected_to(settings):
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["*"]
    target = check("https", "8.8.8.8", 443, "/v1/chat/completions")
    assert target.url == "https://8.8.8.8:443/v1/chat/completions" and target.sni is None


def test_a_listed_range_or_name_admits_private_addresses(settings):
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["10.1.0.0/16"]
    assert check("http", "10.1.2.3", 8000).url == "http://10.1.2.3:8000/v1"
    with pytest.raises(upstreams.UpstreamRefused):
        check("http", "10.2.0.1")
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["localhost"]
    upstreams.forget_checks()
    target = check("https", "localhost", 8443)
    # the name was checked and resolved once; the request goes to that address, the name kept for Host and SNI
    assert target.url.startswith(("https://127.0.0.1:8443", "https://[::1]:8443"))
    assert target.host_header == "localhost:8443" and target.sni == "localhost"


def test_nothing_is_allowed_without_a_star(settings):
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["10.0.0.0/8"]
    with pytest.raises(upstreams.UpstreamRefused):
        check("http", "8.8.8.8")


def test_a_host_that_does_not_resolve_is_refused(settings):
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["*"]
    with pytest.raises(upstreams.UpstreamRefused, match="does not resolve"):
        check("http", "no-such-host.invalid")


def test_urls_are_split_or_refused():
    assert upstreams.split_url("https://api.openai.com/v1/") == ("https", "api.openai.com", 443, "/v1")
    assert upstreams.split_url("http://10.0.0.1:8000") == ("http", "10.0.0.1", 8000, "")
    with pytest.raises(upstreams.UpstreamRefused):
        upstreams.split_url("ftp://example.com")
