"""Downloads reach public addresses only: the pool's urls are written by strangers.

The check is made on the address a connection is actually opened to, inside the HTTP connection itself: every
hop of a redirect opens its own connection, and a hostname is resolved once, checked and connected to by
address, so a DNS answer that changes between a check and the connect (rebinding) cannot slip through. Refused:
loopback, private (RFC 1918, fc00::/7), carrier-grade NAT (100.64.0.0/10), link-local (the cloud metadata
address 169.254.169.254 included), multicast, reserved and unspecified addresses, and the IPv4 address inside an
IPv4-mapped IPv6 one is judged as itself. `--allow-network CIDR` opens exactly the ranges listed.

`install(policy)` puts the guarded handlers into urllib's global opener of the current process, which is what
img2dataset's workers fetch through (pipeline.image.download installs it in each of them).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import urllib.request
from dataclasses import dataclass

from pipeline.errors import UserInputError

REFUSED = "non_public_address"  # the reason a refused url gets in DIR/download/_status
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class NonPublicAddress(OSError):
    """Raised instead of connecting; its message starts with REFUSED so the download stage can count it."""


@functools.lru_cache(maxsize=64)
def networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The CIDR ranges given to --allow-network, each checked (a bare address is its /32 or /128)."""
    parsed = []
    for cidr in cidrs:
        try:
            parsed.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise UserInputError(f"--allow-network {cidr}: not an address range (e.g. 127.0.0.1/32, 10.0.0.0/8)") \
                from None
    return tuple(parsed)


@dataclass(frozen=True)
class NetworkPolicy:
    """Public addresses, plus the ranges explicitly allowed."""

    allowed: tuple[str, ...] = ()

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index names no other host
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip.version == network.version and ip in network for network in networks(self.allowed)):
            return True
        return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified
                                     or (ip.version == 4 and ip in _CGNAT))


def guarded_connect(policy: NetworkPolicy, address: tuple[str, int], timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
                    source_address=None) -> socket.socket:
    """socket.create_connection, but to permitted addresses only: resolve once, refuse what the policy does not
    permit, connect by address, and check the peer the socket ended up connected to."""
    host, port = address
    try:
        candidates = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"cannot resolve {host}: {error}") from None
    permitted, refused = [], []
    for candidate in candidates:
        (permitted if policy.permits(candidate[4][0]) else refused).append(candidate)
    if not permitted:
        raise NonPublicAddress(f"{REFUSED}: {host} is {', '.join(sorted({sockaddr[0] for *_, sockaddr in refused}))}")
    last_error: OSError | None = None
    for family, kind, protocol, _, sockaddr in permitted:
        connection = socket.socket(family, kind, protocol)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                connection.settimeout(timeout)
            if source_address:
                connection.bind(source_address)
            connection.connect(sockaddr)
            peer = connection.getpeername()[0]
            if not policy.permits(peer):
                raise NonPublicAddress(f"{REFUSED}: {host} connected to {peer}")
            return connection
        except NonPublicAddress:
            connection.close()
            raise
        except OSError as error:
            connection.close()
            last_error = error
    raise last_error


def _guarded(base: type, policy: NetworkPolicy) -> type:
    """An http.client connection class whose connections go through guarded_connect."""
    class Guarded(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # http.client opens every connection (HTTPS's too, before TLS) through this attribute
            self._create_connection = functools.partial(guarded_connect, policy)

    return Guarded


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: NetworkPolicy):
        super().__init__()
        self.connection = _guarded(http.client.HTTPConnection, policy)

    def http_open(self, request):
        return self.do_open(self.connection, request)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: NetworkPolicy):
        super().__init__()
        self.connection = _guarded(http.client.HTTPSConnection, policy)

    def https_open(self, request):
        return self.do_open(self.connection, request, context=self._context)


def guarded_opener(policy: NetworkPolicy) -> urllib.request.OpenerDirector:
    """A urllib opener that follows redirects as urllib does, every hop through the guard. No proxy handler: a
    proxy would be the address connected to, and would fetch the stranger's url itself."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _HTTPHandler(policy), _HTTPSHandler(policy))


def install(policy: NetworkPolicy) -> None:
    """Make urllib.request.urlopen in this process go through the guard."""
    urllib.request.install_opener(guarded_opener(policy))
