"""Who may POST to the MM7 path: HTTP Basic credentials and a source-address allowlist.

Both checks read only the WSGI environ (``HTTP_AUTHORIZATION``, ``REMOTE_ADDR``), so the
middleware runs them before a byte of the body is read. Credentials are compared with
:func:`hmac.compare_digest` on bytes, user and password both, against every configured pair,
so the time taken does not tell which part was wrong. Knows nothing of MIME, SOAP or Flask.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import typing as t

Network = t.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Credentials = t.Tuple[t.Tuple[str, str], ...]


def parse_credentials(value: t.Any) -> Credentials | None:
    """``basic_auth`` in any accepted form as ``((user, password), ...)``, None when unset.

    Accepts ``"user:pass,user2:pass2"`` (split on commas, then on the first colon, so a
    password may hold ``:`` but not ``,``), a mapping ``{user: password}``, one
    ``(user, password)`` pair or a list of them.

    :raises ValueError: an empty user name or password, or a user name holding ``:``.
    """
    if value is None or value == "":
        return None
    pairs: list[tuple[str, str]] = []
    if isinstance(value, str):
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            user, colon, password = item.partition(":")
            if not colon:
                raise ValueError("basic_auth must be 'user:password[,user2:password2]'")
            pairs.append((user, password))
    elif isinstance(value, t.Mapping):
        pairs = [(str(user), str(password)) for user, password in value.items()]
    else:
        items = list(value)
        if len(items) == 2 and all(isinstance(item, str) for item in items):
            items = [tuple(items)]
        for item in items:
            user, password = item
            pairs.append((user, password))
    for user, password in pairs:
        if not isinstance(user, str) or not isinstance(password, str):
            raise ValueError("basic_auth user names and passwords must be str")
        if not user or not password:
            raise ValueError("basic_auth needs a non-empty user name and password")
        if ":" in user:
            raise ValueError("a basic_auth user name may not contain ':' (RFC 7617)")
    return tuple(pairs) or None


def parse_networks(value: t.Any) -> tuple[Network, ...] | None:
    """``allowed_ips`` in any accepted form as a tuple of networks, None when unset.

    Accepts ``"203.0.113.0/24,2001:db8::/32,::1"`` (commas or whitespace between items) or an
    iterable of strings and ``ipaddress`` networks or addresses. A bare address is a /32 (/128).

    :raises ValueError: an item is not an address or network, or has host bits set
        (``10.0.0.5/8``: write ``10.0.0.0/8``).
    """
    if value is None or value == "":
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    networks: list[Network] = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip() if isinstance(item, str) else item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"allowed_ips: {item!r} is not an IP network: {exc}") from None
    return tuple(networks) or None


class BasicAuth:
    """Checks an ``Authorization`` header against a set of (user, password) pairs."""

    def __init__(self, credentials: Credentials, realm: str = "MM7") -> None:
        self._pairs = [(user.encode(), password.encode()) for user, password in credentials]
        #: the ``WWW-Authenticate`` value sent with a 401
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def __repr__(self) -> str:  # never the credentials
        return f"<BasicAuth {len(self._pairs)} user(s)>"

    def check(self, header: str | None) -> bool:
        """True when ``header`` is ``Basic`` with one of the configured pairs.

        Any other value (missing, another scheme, no token, bad base64, no colon, bytes that
        are not UTF-8) is False, never an exception. Every pair is compared, user and password
        both, whatever the header holds.
        """
        user, password, well_formed = _decode_basic(header)
        matched = False
        for expected_user, expected_password in self._pairs:
            user_ok = hmac.compare_digest(user, expected_user)
            password_ok = hmac.compare_digest(password, expected_password)
            matched |= user_ok & password_ok
        return matched and well_formed


def _decode_basic(header: str | None) -> tuple[bytes, bytes, bool]:
    """(user, password, well_formed) from an ``Authorization`` value; b"" parts when malformed."""
    if not header:
        return b"", b"", False
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "basic" or not token:
        return b"", b"", False
    try:
        decoded = base64.b64decode(token.encode("latin-1"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return b"", b"", False
    user, colon, password = decoded.partition(b":")
    return user, password, bool(colon)


class IPAllowlist:
    """Checks ``REMOTE_ADDR`` against networks; IPv4-mapped IPv6 addresses match as IPv4
    (``::ffff:203.0.113.5`` is in ``203.0.113.0/24``, and ``203.0.113.5`` in
    ``::ffff:203.0.113.0/120``)."""

    def __init__(self, networks: t.Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def __repr__(self) -> str:
        return f"<IPAllowlist {', '.join(str(n) for n in self.networks)}>"

    def allows(self, remote_addr: str | None) -> bool:
        """True when ``remote_addr`` is in one of the networks; False when absent or invalid."""
        if not remote_addr:
            return False
        try:
            address = ipaddress.ip_address(remote_addr.strip().strip("[]"))
        except ValueError:
            return False
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            if address.scope_id:  # fe80::1%eth0: match the address without its zone
                candidates = [ipaddress.IPv6Address(str(address).partition("%")[0])]
            if address.ipv4_mapped is not None:
                candidates.append(address.ipv4_mapped)
        else:  # and an IPv4 client matches a network written as ::ffff:a.b.c.d/n
            candidates.append(ipaddress.IPv6Address(f"::ffff:{address}"))
        return any(
            candidate in network
            for candidate in candidates
            for network in self.networks
            if candidate.version == network.version
        )
