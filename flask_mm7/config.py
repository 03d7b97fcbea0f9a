"""Settings: one table of every option, its default and type, shared by both adapters.

Each field is an ``MM7Middleware`` keyword argument and, upper-cased behind ``MM7_``, a Flask
config key (``max_parts`` -> ``MM7_MAX_PARTS``). Knows nothing of WSGI or Flask.
"""

from __future__ import annotations

import dataclasses
import typing as t

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
    #: attachments larger than this many bytes are spooled to a temporary file
    spool_threshold: int = 512 * 1024
    #: directory for spooled attachments; None uses the system's temporary directory
    spool_dir: t.Optional[str] = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{field.name} must be a positive int, not {value!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', not {self.path!r}")

    @property
    def limits(self) -> Limits:
        return Limits(
            max_parts=self.max_parts,
            max_depth=self.max_depth,
            max_part_header_size=self.max_part_header_size,
            max_soap_size=self.max_soap_size,
            spool_threshold=self.spool_threshold,
            spool_dir=self.spool_dir,
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
                if field.type == "int" and isinstance(value, str):
                    value = int(value)
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
