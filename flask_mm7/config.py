"""Settings: one table of every option, its default and type, shared by both adapters.

Each field is an ``MM7Middleware`` keyword argument and, upper-cased behind ``MM7_``, a Flask
config key (``max_parts`` -> ``MM7_MAX_PARTS``). Knows nothing of WSGI or Flask.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing as t

from . import auth, dedupe
from .parts import Limits

PREFIX = "MM7_"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every option of the receiver, with safe defaults for a public endpoint."""

    #: the URL path the receiver answers on; other paths pass through to the wrapped app
    path: str = "/mm7"
    #: largest request body in bytes, chunked bodies included (413 above it)
    max_content_length: int = 64 * 1024 * 1024
    #: most MIME parts in one body, nested multipart containers included
    max_parts: int = 256
    #: most levels of multipart nesting, the body's own included (OpenMarket uses 2)
    max_depth: int = 4
    #: most bytes in one part's header block
    max_part_header_size: int = 16384
    #: largest SOAP envelope part in bytes (OpenMarket's are about 1.5 KB)
    max_soap_size: int = 256 * 1024
    #: deepest XML element nesting in the envelope (a DeliverReq needs 6)
    max_xml_depth: int = 64
    #: attachments larger than this many bytes are spooled to the request's temporary file
    spool_threshold: int = 512 * 1024
    #: directory for spooled attachments; None uses the system's temporary directory. It must
    #: exist and be writable: checked here, at start-up
    spool_dir: t.Optional[str] = None
    #: a body whose Content-Length is at most this many bytes is parsed in memory whatever
    #: its parts' sizes (several times faster than spooling); larger or chunked bodies spool
    #: every part above ``spool_threshold``, and every part once this many bytes of
    #: attachment data are in memory (the most one request holds)
    max_memory_body_size: int = 8 * 1024 * 1024
    #: HTTP Basic credentials: ``"user:pass,user2:pass2"``, ``{user: pass}`` or pairs;
    #: None accepts any client (401 without a match, before the body is read)
    basic_auth: t.Any = dataclasses.field(default=None, repr=False)
    #: the realm named in ``WWW-Authenticate``
    auth_realm: str = "MM7"
    #: client networks allowed on the MM7 path, ``"203.0.113.0/24,::1"`` or a list, matched
    #: against ``REMOTE_ADDR`` (403 outside, before the body is read); None allows any
    allowed_ips: t.Any = None
    #: True silences the startup warning logged when neither basic_auth nor allowed_ips is set
    allow_anonymous: bool = False
    #: answer a retry of an acknowledged TransactionID without calling the handler again:
    #: None (off), ``"memory"`` (this process), ``"sqlite:///path.db"`` (shared by workers) or
    #: a :class:`~flask_mm7.dedupe.DedupeStore`
    dedupe: t.Any = None
    #: seconds an acknowledged TransactionID is remembered (make it the sender's retry horizon)
    dedupe_ttl: int = 86400
    #: most TransactionIDs the ``"memory"`` store keeps (least recently used dropped first)
    dedupe_max_entries: int = 100_000
    #: seconds a running handler keeps its transaction's claim at most (a stuck handler);
    #: after that a retry may reach the handler again
    dedupe_claim_timeout: int = 300
    #: seconds a ``"sqlite:///"`` claim lasts unless its holder renews it (done every third
    #: of it while the handler runs): a killed worker's transaction is free again after this
    #: (at once when the worker was on this host)
    dedupe_lease: int = 10
    #: most MM7 requests handled at once by this middleware; more get 503 (None: no cap)
    max_concurrency: t.Optional[int] = None
    #: the ``Retry-After`` seconds sent with a 503 (overload, duplicate still in progress)
    retry_after: int = 5

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", "t.Optional[int]") and not (
                (value is None and field.type != "int")
                or (not isinstance(value, bool) and isinstance(value, int) and value >= 1)
            ):
                raise ValueError(f"{field.name} must be a positive int, not {value!r}")
            if field.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{field.name} must be True or False, not {value!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', not {self.path!r}")
        realm = self.auth_realm
        if not (realm and realm.isascii() and realm.isprintable()) or any(
            c in realm for c in '"\\'
        ):
            raise ValueError(f"auth_realm must be printable ASCII without quotes: {realm!r}")
        if self.spool_dir is not None:
            _check_spool_dir(self.spool_dir)
        # normalise the string forms once; a frozen dataclass needs object.__setattr__
        object.__setattr__(self, "basic_auth", auth.parse_credentials(self.basic_auth))
        object.__setattr__(self, "allowed_ips", auth.parse_networks(self.allowed_ips))
        if isinstance(self.dedupe, str) and self.dedupe.strip().lower() in ("", "none", "off"):
            object.__setattr__(self, "dedupe", None)
        dedupe.check_spec(self.dedupe)

    @functools.cached_property
    def limits(self) -> Limits:
        """The parser's share of the settings (built once)."""
        return Limits(
            max_parts=self.max_parts,
            max_depth=self.max_depth,
            max_part_header_size=self.max_part_header_size,
            max_soap_size=self.max_soap_size,
            spool_threshold=self.spool_threshold,
            spool_dir=self.spool_dir,
            max_memory_body_size=self.max_memory_body_size,
        )

    @classmethod
    def from_mapping(
        cls, config: t.Mapping[str, t.Any], prefix: str = PREFIX, **overrides: t.Any
    ) -> Settings:
        """Settings from ``MM7_*`` keys of ``config`` (strings of digits accepted for ints),
        then ``overrides`` by field name, which win."""
        values: dict[str, t.Any] = {}
        for field in dataclasses.fields(cls):
            key = prefix + field.name.upper()
            if key in config:
                value = config[key]
                if isinstance(value, str):
                    value = _from_string(field.type, value)
                values[field.name] = value
        unknown = set(overrides) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown MM7 setting(s): {', '.join(sorted(unknown))}")
        values.update(overrides)
        return cls(**values)

    @classmethod
    def config_defaults(cls, prefix: str = PREFIX) -> dict[str, t.Any]:
        """``{"MM7_PATH": "/mm7", ...}``: every config key with its default."""
        return {prefix + f.name.upper(): f.default for f in dataclasses.fields(cls)}


def _check_spool_dir(path: str) -> None:
    """Refuse a spool directory that is missing, not a directory, or not writable.

    Checked at start-up: otherwise the first message large enough to spool would find out, and
    every retry of it fail the same way.
    """
    setting = f"spool_dir ({PREFIX}SPOOL_DIR) {path!r}"
    if not os.path.exists(path):
        raise ValueError(f"{setting} does not exist")
    if not os.path.isdir(path):
        raise ValueError(f"{setting} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{setting} is not writable")


def _from_string(kind: object, value: str) -> t.Any:
    """A config string (an environment variable, say) as the field's type."""
    if kind == "int":
        return int(value)
    if kind == "t.Optional[int]":
        return None if value.strip().lower() in ("", "none") else int(value)
    if kind == "t.Optional[str]":
        return value or None
    if kind == "bool":
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return value
