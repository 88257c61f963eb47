"""Where a status callback may be POSTed: public addresses only, unless CALLBACK_ALLOW_PRIVATE_NETWORKS.

A callback_url is the API client's choice, so without this a client could have the console POST to itself, its
database, the cloud's metadata service (169.254.169.254) or anything else on its network (SSRF). messaging refuses
a literal private IP (and localhost) when the URL is given, without resolving names (too slow for a campaign's
fan-out); the check that counts is this one, before each POST, because a name's DNS answer can change after.
"""
import ipaddress
import socket

import httpx
from django.conf import settings


class PrivateAddress(Exception):
    """The callback_url's host resolves to an address that is not public: a permanent failure, never retried."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = ip.ipv4_mapped
    # is_global is False for loopback, private, link-local, shared (100.64/10), reserved and unspecified
    # addresses, but True for some multicast ones (224.0.0.1 on Python 3.11).
    return ip.is_global and not ip.is_multicast


def public_addresses(url: httpx.URL) -> list[str]:
    """Every address the URL's host resolves to, when all are public; else PrivateAddress naming one that is not.
    socket.gaierror when the name does not resolve."""
    port = url.port or (443 if url.scheme == "https" else 80)
    found = socket.getaddrinfo(url.raw_host.decode("ascii"), port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    for address in addresses:
        if not is_public(address):
            raise PrivateAddress(f"callback_url resolves to a private address ({address}); "
                                 "set CALLBACK_ALLOW_PRIVATE_NETWORKS=true to allow it")
    return addresses


def post(url: str, *, content: bytes, headers: dict, timeout: float) -> httpx.Response:
    """POST ``content`` to ``url`` (redirects not followed), only to a public address unless the setting allows
    private ones. Raises PrivateAddress, or httpx.HTTPError (a name that does not resolve is an httpx.ConnectError,
    as when httpx resolves it)."""
    if settings.CALLBACK_ALLOW_PRIVATE_NETWORKS:
        return httpx.post(url, content=content, headers=headers, timeout=timeout, follow_redirects=False)
    target = httpx.URL(url)
    try:
        addresses = public_addresses(target)
    except socket.gaierror as problem:
        raise httpx.ConnectError(f"{target.host} does not resolve: {problem}") from problem
    for address in addresses[:-1]:  # each in turn when one refuses, as socket.create_connection does
        try:
            return post_to_address(target, address, content=content, headers=headers, timeout=timeout)
        except httpx.ConnectError:
            continue
    return post_to_address(target, addresses[-1], content=content, headers=headers, timeout=timeout)


def post_to_address(url: httpx.URL, address: str, *, content: bytes, headers: dict,
                    timeout: float) -> httpx.Response:
    """POST to ``url`` connecting to ``address``, the one checked, rather than letting httpx resolve the name again:
    a DNS answer changed between the check and the connection (DNS rebinding) cannot send it elsewhere. The Host
    header, TLS's server name and the certificate check still use the URL's name."""
    name = url.raw_host.decode("ascii")
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        return client.post(url.copy_with(host=address), content=content,
                           headers={**headers, "Host": url.netloc.decode("ascii")},
                           extensions={"sni_hostname": name})
