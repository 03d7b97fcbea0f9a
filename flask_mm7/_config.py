"""Settings: the one table of every option (name, default, converter, meaning).

Each option is declared once, as a field of :class:`Settings`: its default, the converter that
checks and normalises a value, and its meaning (the sentence README's Configuration table
shows). The field name is an ``MM7Middleware`` / ``MM7(app, ...)`` keyword argument and,
upper-cased behind ``MM7_``, a Flask config key (``max_parts`` -> ``MM7_MAX_PARTS``). README's
table is :func:`markdown_table` (print it with ``python -c "import flask_mm7._config as c;
print(c.markdown_table())"``) and a test keeps the two equal. Knows nothing of WSGI or Flask.
"""

from __future__ import annotations

import dataclasses
import decimal
import difflib
import functools
import os
import re
import typing as t

from . import _auth
from ._logs import get_logger

if t.TYPE_CHECKING:  # pragma: no cover
    from ._parts import Limits

logger = get_logger(__name__)

PREFIX = "MM7_"
#: ``MM7_*`` names the project uses that are not settings (the ``mm7 send`` password variable,
#: the load test's message count): a mapping holding one, such as ``os.environ``, is not warned
#: about. Any other unknown ``MM7_*`` key is, with the closest setting's name when one is close
NOT_SETTINGS = frozenset({"MM7_SEND_PASSWORD", "MM7_LOAD_MESSAGES"})

T = t.TypeVar("T")


# --------------------------------------------------------------------------------- converters
# Each takes a value as given (a Python value, or a string from the environment) and returns it
# normalised, or raises ValueError saying what was expected; the caller adds the key. Each is
# idempotent: a converted value converts to itself.


def _refused(expected: str, value: object) -> ValueError:
    return ValueError(f"expected {expected}, got {value!r}")


def _is_none(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def whole(value: t.Any) -> int:
    """A positive whole number: an int or a string of digits."""
    number = value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise _refused("a positive whole number", value)
    return number


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def size(value: t.Any) -> int:
    """A positive size in bytes: an int, or a string with an optional unit: KiB, MiB, GiB
    (binary: 1024, 1024², 1024³) or KB, MB, GB (decimal: 1000, 1000², 1000³), any case."""
    expected = 'a size in bytes such as 65536, "512KiB" or "64 MiB"'
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match is None:
            raise _refused(expected, value)
        exact = decimal.Decimal(match[1]) * _UNITS[(match[2] or "b").lower()]
        if exact != exact.to_integral_value():
            raise _refused(expected + " (a whole number of bytes)", value)
        number: object = int(exact)
    else:
        number = value
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise _refused(expected, value)
    return number


def boolean(value: t.Any) -> bool:
    """True or False; or, any case, true/yes/on/1 and false/no/off/0 (an empty string is
    False); 1 and 0 too, as ``app.config.from_prefixed_env()`` loads them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0", ""):
            return False
    raise _refused("true or false (also yes/no, on/off, 1/0)", value)


def optional(convert: t.Callable[[t.Any], T]) -> t.Callable[[t.Any], T | None]:
    """``convert``, or None for None, ``""`` and ``"none"`` (any case)."""

    def convert_optional(value: t.Any) -> T | None:
        return None if _is_none(value) else convert(value)

    convert_optional.__name__ = f"optional({convert.__name__})"
    return convert_optional


def url_path(value: t.Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _refused("a URL path starting with '/'", value)
    return value


def realm(value: t.Any) -> str:
    if (
        not isinstance(value, str)
        or not (value and value.isascii() and value.isprintable())
        or any(c in value for c in '"\\')
    ):
        raise _refused("printable ASCII without quotes or backslashes", value)
    return value


def directory(value: t.Any) -> str:
    """An existing, writable directory: checked at start-up, otherwise the first message large
    enough to spool would find out, and every retry of it fail the same way."""
    if not isinstance(value, str):
        raise _refused("a directory path", value)
    if not os.path.exists(value):
        raise ValueError(f"directory {value!r} does not exist")
    if not os.path.isdir(value):
        raise ValueError(f"{value!r} is not a directory")
    if not os.access(value, os.W_OK | os.X_OK):
        raise ValueError(f"directory {value!r} is not writable")
    return value


def credentials(value: t.Any) -> _auth.Credentials | None:
    if _is_none(value):
        return None
    try:  # the message never holds the value: it may be a password
        return _auth.parse_credentials(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "expected 'user:password[,user2:password2]', a {user: password} mapping or"
            f" (user, password) pairs ({exc})"
        ) from None


def networks(value: t.Any) -> tuple[_auth.Network, ...] | None:
    if _is_none(value):
        return None
    expected = "IP networks such as '203.0.113.0/24, ::1' or a list"
    try:
        return _auth.parse_networks(value)
    except TypeError:
        raise _refused(expected, value) from None
    except ValueError as exc:  # it names the item at fault
        raise ValueError(f"expected {expected}: {str(exc).removeprefix('allowed_ips: ')}") from None


def dedupe_spec(value: t.Any) -> t.Any:
    """None (also ``"off"``), or a store specification :func:`flask_mm7.dedupe.check_spec`
    accepts (``"memory"``, ``"sqlite:///path.db"``, a store object)."""
    if _is_none(value) or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    from . import dedupe  # imported here: dedupe takes its own defaults from this module

    dedupe.check_spec(value)
    return value


def _switch_or(what: str, is_object: t.Callable[[t.Any], bool]) -> t.Callable[[t.Any], t.Any]:
    """A converter to False (also the strings boolean() reads as false), True, or an object
    ``is_object`` recognises (``what``), kept as it is."""

    def convert(value: t.Any) -> t.Any:
        if is_object(value):
            return value
        if _is_none(value):
            return False
        try:
            return boolean(value)
        except ValueError:
            raise _refused(f"true, false or {what}", value) from None

    return convert


#: True, or a ``prometheus_client`` ``CollectorRegistry`` (anything with ``register`` and
#: ``collect``) to register in
metrics_spec = _switch_or(
    "a prometheus_client CollectorRegistry",
    lambda value: hasattr(value, "register") and hasattr(value, "collect"),
)
#: True (the global tracer provider), or an OpenTelemetry ``TracerProvider`` (anything with
#: ``get_tracer``)
tracing_spec = _switch_or(
    "an OpenTelemetry TracerProvider", lambda value: hasattr(value, "get_tracer")
)


# ------------------------------------------------------------------------------------ the table


def option(
    default: T,
    convert: t.Callable[[t.Any], t.Any],
    meaning: str,
    *,
    shown: str | None = None,
    secret: bool = False,
) -> T:
    """One row of the table: a :class:`Settings` field with its default, converter and meaning
    (``shown`` is README's text for the default when not the value itself)."""
    metadata = {"convert": convert, "meaning": meaning, "shown": shown}
    return dataclasses.field(default=default, repr=not secret, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every option of the receiver, with safe defaults for a public endpoint (README's
    Configuration table lists them; the list is also at the end of this docstring).

    ``Settings(max_parts=10)`` converts and checks every value; a bad one raises ValueError
    naming the option and what was expected.
    """

    path: str = option(
        "/mm7",
        url_path,
        "the path MM7 requests are POSTed to (with or without a trailing slash); other paths"
        " pass through",
    )
    max_content_length: int = option(
        64 * 1024 * 1024,
        size,
        "largest body; larger gets 413, also for chunked bodies (counted while read, never"
        " parsed truncated)",
    )
    max_parts: int = option(256, whole, "most MIME parts in a body, nested containers included")
    max_depth: int = option(
        4,
        whole,
        "most levels of multipart nesting, the body's own included (OpenMarket uses 2)",
    )
    max_part_header_size: int = option(16384, size, "most bytes in one part's header block")
    max_soap_size: int = option(
        256 * 1024, size, "largest SOAP envelope part (OpenMarket's are about 1.5 KB)"
    )
    max_xml_depth: int = option(
        64, whole, "deepest element nesting in the envelope (a DeliverReq needs 6)"
    )
    spool_threshold: int = option(
        512 * 1024, size, "attachments larger than this go to the request's temporary file ..."
    )
    max_memory_body_size: int = option(
        8 * 1024 * 1024,
        size,
        "... unless the body's Content-Length is at most this: then it is parsed in memory."
        " Also the most attachment data one request keeps in memory: past it, attachments spool"
        " whatever their size",
    )
    spool_dir: t.Optional[str] = option(
        None,
        optional(directory),
        "where spooled attachments go (deleted when the request ends); must be an existing,"
        " writable directory, checked at start-up",
        shown="system temp dir",
    )
    basic_auth: t.Any = option(
        None,
        credentials,
        'HTTP Basic credentials the relay must send: `"user:pass,user2:pass2"` (a password'
        " may hold `:`, not `,`), a dict `{user: password}` or a list of `(user, password)`"
        ' pairs. Anything else gets 401 with `WWW-Authenticate: Basic realm="MM7",'
        ' charset="UTF-8"` before the body is read',
        secret=True,
    )
    auth_realm: str = option("MM7", realm, "the realm named in `WWW-Authenticate`")
    allowed_ips: t.Any = option(
        None,
        networks,
        "client networks allowed on the MM7 path, matched against `REMOTE_ADDR`:"
        ' `"203.0.113.0/24, 2001:db8::/32, ::1"` or a list. IPv4-mapped IPv6'
        " (`::ffff:203.0.113.5`) matches as IPv4. Anything else gets 403 before the body is"
        " read",
    )
    allow_anonymous: bool = option(
        False,
        boolean,
        "`True` silences the warning logged at startup when neither `MM7_BASIC_AUTH` nor"
        " `MM7_ALLOWED_IPS` is set (say, when a proxy in front already authenticates)",
    )
    dedupe: t.Any = option(
        None,
        dedupe_spec,
        "remember acknowledged transactions so a relay's retry is not delivered twice:"
        ' `"memory"` (this process), `"sqlite:///relative/path.db"` or'
        ' `"sqlite:////absolute/path.db"` (shared by all worker processes on the host), a Redis'
        ' URL (`"redis://host:6379/0"`, `rediss://`, `unix://`; extra `[redis]`) or a'
        ' SQLAlchemy URL (`"postgresql+psycopg://user:pw@host/db"`; extra `[sql]`) shared by'
        " every host (see [More than one host](#more-than-one-host)), or a store object."
        ' `None` (or `""`, `"none"`, `"off"`) turns it off',
    )
    dedupe_ttl: int = option(
        86400,
        whole,
        "seconds an answered TransactionID is remembered. Make it at least your relay's retry"
        " horizon",
    )
    dedupe_max_entries: int = option(
        100_000,
        whole,
        'most TransactionIDs the `"memory"` store keeps (least recently used dropped first)',
    )
    dedupe_claim_timeout: int = option(
        300,
        whole,
        "seconds a handler that is still running keeps its transaction at most (a hung"
        " handler); a retry after that reaches the handler again. Keep it above your longest"
        " handler run and your server's worker timeout",
    )
    dedupe_lease: int = option(
        10,
        whole,
        "SQLite, Redis and SQL stores: a claim is a lease of this many seconds, renewed every"
        " third of it while the handler runs. A worker killed mid-handler stops renewing: its"
        " transaction is free again after the lease, at once when the worker ran on this host"
        " (its process is gone)",
    )
    max_concurrency: t.Optional[int] = option(
        None,
        optional(whole),
        "most MM7 requests handled at once by this process (per app). More get HTTP 503 with"
        " `Retry-After` and a SOAP Fault (Server, 4006) at once, without reading the body",
    )
    retry_after: int = option(
        5,
        whole,
        "the `Retry-After` seconds sent with a 503 (over `MM7_MAX_CONCURRENCY`, or a retry that"
        " arrives while the first copy is still in the handler)",
    )
    metrics: t.Any = option(
        False,
        metrics_spec,
        "Prometheus metrics (extra `[metrics]`): `True` registers the `mm7_*` metrics in"
        " `prometheus_client`'s default registry, a `CollectorRegistry` in that one (see"
        " [Operating it](#operating-it))",
    )
    metrics_path: t.Optional[str] = option(
        None,
        optional(url_path),
        "a path on which the app answers GET with the metrics in Prometheus' text format"
        " (needs `MM7_METRICS`; under gunicorn it gathers every worker's, see"
        " [Operating it](#operating-it)). `None`: not served by the app",
    )
    tracing: t.Any = option(
        False,
        tracing_spec,
        "OpenTelemetry (extra `[otel]`): `True` traces every MM7 request through the global"
        " tracer provider, a `TracerProvider` through that one",
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = _convert(field, getattr(self, field.name), field.name)
            object.__setattr__(self, field.name, value)  # frozen: normalise in place once
        if self.metrics_path is not None:
            if self.metrics is False:
                raise ValueError("metrics_path: set metrics too (MM7_METRICS = True)")
            if self.metrics_path.rstrip("/") == self.path.rstrip("/"):
                raise ValueError("metrics_path: must differ from path, the MM7 endpoint")

    @functools.cached_property
    def limits(self) -> Limits:
        """The parser's share of the settings (built once)."""
        from ._parts import Limits  # imported here: parts takes its defaults from this module

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
        """Settings from the ``MM7_*`` keys of ``config`` (strings accepted for every value),
        then ``overrides`` by field name, which win.

        An unknown ``MM7_*`` key is logged as a warning naming the closest known key (a typo
        must not leave, say, Basic auth silently off); :data:`NOT_SETTINGS` are left alone.

        :raises ValueError: a bad value, naming its key (``MM7_MAX_PARTS``) and what was
            expected.
        :raises TypeError: an unknown keyword in ``overrides``.
        """
        fields = {field.name: field for field in dataclasses.fields(cls)}
        keys = {prefix + name.upper(): field for name, field in fields.items()}
        known = {*keys, *NOT_SETTINGS}
        for key in config:
            if isinstance(key, str) and key.startswith(prefix) and key not in known:
                logger.warning("unknown setting %s%s", key, _did_you_mean(key, keys, prefix))
        values = {
            field.name: _convert(field, config[key], key)
            for key, field in keys.items()
            if key in config
        }
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            hints = [name + _did_you_mean(name, fields) for name in unknown]
            raise TypeError(f"unknown MM7 setting(s): {', '.join(hints)}")
        values.update(overrides)
        return cls(**values)

    @classmethod
    def config_defaults(cls, prefix: str = PREFIX) -> dict[str, t.Any]:
        """``{"MM7_PATH": "/mm7", ...}``: every config key with its default."""
        return {prefix + f.name.upper(): f.default for f in dataclasses.fields(cls)}


def _convert(field: dataclasses.Field[t.Any], value: t.Any, label: str) -> t.Any:
    try:
        return field.metadata["convert"](value)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None


def _did_you_mean(name: str, known: t.Iterable[str], prefix: str = "") -> str:
    """`` (did you mean MM7_BASIC_AUTH?)``: the closest known name, compared without the
    prefix all of them share (which would make every name look alike)."""
    names = {item[len(prefix) :]: item for item in known}
    close = difflib.get_close_matches(name[len(prefix) :], list(names), n=1)
    return f" (did you mean {names[close[0]]}?)" if close else " (not a flask-mm7 setting)"


#: the defaults, for the modules that need one of them without a Settings at hand
DEFAULTS = Settings()


# ---------------------------------------------------------------------------- the README table


def show_default(field: dataclasses.Field[t.Any]) -> str:
    """README's text for a field's default: ``64 MiB``, ``256``, ```"/mm7"```, ```None```."""
    shown: str | None = field.metadata["shown"]
    default: t.Any = field.default
    if shown is not None:
        return shown
    if field.metadata["convert"] is size:
        for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if default % factor == 0:
                return f"{default // factor} {unit}"
    if isinstance(default, str):
        return f'`"{default}"`'
    if default is None or isinstance(default, bool):
        return f"`{default}`"
    return str(default)


def markdown_table() -> str:
    """README's Configuration table, one row per option."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(Settings):
        key = PREFIX + field.name.upper()
        lines.append(f"| `{key}` | {show_default(field)} | {field.metadata['meaning']} |")
    return "\n".join(lines) + "\n"


def _document() -> None:
    """Append the table to :class:`Settings`' docstring, so ``help(Settings)`` shows it."""
    rows = [
        f"- ``{field.name}`` ({show_default(field).strip('`')}): {field.metadata['meaning']}"
        + ("" if field.metadata["meaning"].endswith(".") else ".")
        for field in dataclasses.fields(Settings)
    ]
    if Settings.__doc__ is not None:  # None under python -OO
        Settings.__doc__ = f"{Settings.__doc__}\n    Options:\n\n    " + "\n    ".join(rows) + "\n"


_document()
