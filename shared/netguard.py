"""Which network addresses a link from a chat may reach: public ones only, unless the server allows local.

A link's host is judged twice. First as the HTTP client will spell it: aiohttp (through yarl)
maps a host to its IDNA / UTS #46 form before it connects, so full-width digits (１２７.０.０.１),
circled digits (①②⑦.0.0.1) and ideographic full stops (127。0。0。1) become an ASCII IP literal;
`normalise_host` does the same mapping, so such a host is refused as the literal it becomes.
Then at connect time: every address the resolver returns, or the literal itself (aiohttp connects
to an IP literal without asking its resolver), must be public, with the IPv4 address that an IPv6
form carries judged too (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64). That second check is
what stops DNS answers (rebinding, `127.1`, `0x7f.1`, names that resolve inside the network).

Stdlib only: aiohttp is imported by the caller, when a link is actually fetched.
"""

import ipaddress
import unicodedata
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Shared address space (carrier-grade NAT): not private in the RFC 1918 sense, never public.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# NAT64 prefixes that put the IPv4 address in the last four bytes (RFC 6052 well-known, RFC 8215 local).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Dots IDNA treats as label separators (ideographic, full-width and half-width ideographic full stops).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class BlockedAddressError(OSError):
    """A link whose host is, or resolves to, an address the server must not fetch from."""


def normalise_host(host: str) -> str:
    """`host` as the HTTP client connects to it: IDNA / UTS #46 mapped, lower case, brackets off.

    aiohttp 3.13 (yarl 1.25, `_idna_encode`) encodes a non-ASCII host with UTS #46 mapping, which
    folds compatibility characters (NFKC) and the ideographic dots to ASCII. A host that yarl
    cannot encode is refused by yarl too, so the NFKC fold here only has to be no weaker."""
    host = host.strip().strip("[]")
    if not host.isascii():
        host = unicodedata.normalize("NFKC", host.translate(_DOTS)).translate(_DOTS)
        try:
            import idna  # what yarl uses; Open WebUI installs it

            host = idna.encode(host, uts46=True, std3_rules=False).decode("ascii")
        except ImportError:
            pass
        except ValueError:  # idna.IDNAError and UnicodeError: not a name the client can connect to
            pass
    return host.lower().rstrip(".")


def ip_literal(host: str) -> IPAddress | None:
    """The address a normalised host names when it is an IP literal (a zone id is ignored)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, compatible, 6to4, Teredo and NAT64."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    packed = address.packed
    if packed[:12] == b"\0" * 12 and int(address) > 1:  # IPv4-compatible ::a.b.c.d (not :: or ::1)
        found.append(ipaddress.IPv4Address(packed[12:]))
    if address in _NAT64[0]:
        found.append(ipaddress.IPv4Address(packed[12:]))
    elif address in _NAT64[1]:
        found.append(ipaddress.IPv4Address(bytes((packed[6], packed[7], packed[9], packed[10]))))
    return found


def _public(address: IPAddress) -> bool:
    # Python's `is_global` counts multicast (224.0.0.0/4, ff00::/8) and NAT64 as global: not here.
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_loopback
        and not address.is_link_local
        and not address.is_private
        and address not in _CGNAT
    )


def address_allowed(address: IPAddress | str) -> bool:
    """Whether a link may connect to `address`: it and every IPv4 address inside it are public."""
    if isinstance(address, str):
        parsed = ip_literal(address)
        if parsed is None:
            return False
        address = parsed
    inner = embedded_ipv4(address)
    if any(address in prefix for prefix in _NAT64):
        # A NAT64 gateway connects to the IPv4 address inside: that is the one to judge (Python
        # counts the whole prefix as reserved, which would refuse every IPv6-only server's fetches).
        return all(_public(v4) for v4 in inner)
    return _public(address) and all(_public(v4) for v4 in inner)


def check_host(host: str) -> None:
    """Refuse a host that is, once normalised, an IP literal outside the public internet.

    Names pass here; their addresses are judged when the connection is made (`check_addresses`)."""
    literal = ip_literal(normalise_host(host))
    if literal is not None and not address_allowed(literal):
        raise BlockedAddressError(f"{literal} is not a public address")


def check_addresses(host: str, addresses: list[str]) -> None:
    """Refuse the connection unless every address `host` resolved to is public.

    All of them, not just some: a name that answers with one public and one private address
    would otherwise let the client pick the private one."""
    if not addresses:
        raise BlockedAddressError(f"{host} resolved to no address")
    blocked = [a for a in addresses if not address_allowed(a)]
    if blocked:
        raise BlockedAddressError(f"{host} resolves to a non-public address ({', '.join(blocked[:3])})")


_guarded_connectors: dict[int, type] = {}  # one connector class per aiohttp module (built on first use)


def guarded_connector(aiohttp: Any, **kwargs: Any) -> Any:
    """An aiohttp TCPConnector that checks every address it is about to connect to.

    aiohttp (3.13 and the 3.x releases Open WebUI 0.6.43 ships) routes every new connection
    through `TCPConnector._resolve_host`, IP literals included; the check runs on what it returns,
    so the address judged is the address connected to (no second lookup, no rebinding window)."""
    cls = _guarded_connectors.get(id(aiohttp))
    if cls is None:

        class GuardedConnector(aiohttp.TCPConnector):
            async def _resolve_host(self, host: str, port: int, *args: Any, **kw: Any) -> Any:
                check_host(host)
                found = await super()._resolve_host(host, port, *args, **kw)
                check_addresses(host, [entry["host"] for entry in found])
                return found

        cls = _guarded_connectors[id(aiohttp)] = GuardedConnector
    return cls(**kwargs)
