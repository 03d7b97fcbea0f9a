"""The settings table: every option's converter, its errors, the Flask reading, the defaults."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import typing as t

import pytest
from flask import Flask

from flask_mm7 import MM7, MM7Middleware
from flask_mm7._config import DEFAULTS, Settings, markdown_table
from flask_mm7._mime import MultipartDecoder
from flask_mm7._parts import DEFAULT_LIMITS, Limits
from flask_mm7.dedupe import MemoryStore, SQLiteStore

FIELDS = {field.name: field for field in dataclasses.fields(Settings)}
MiB = 1024 * 1024

#: per option: (a string as the environment gives it, the value it becomes, a bad value)
EXAMPLES: dict[str, tuple[str, t.Any, t.Any]] = {
    "path": ("/inbound/mms", "/inbound/mms", "mm7"),
    "max_content_length": ("64MiB", 64 * MiB, "64 apples"),
    "max_parts": ("12", 12, "ten"),
    "max_depth": (" 3 ", 3, "0"),
    "max_part_header_size": ("16 KiB", 16384, "-1"),
    "max_soap_size": ("1.5KB", 1500, "1.5B"),
    "max_xml_depth": ("8", 8, "8.0"),
    "spool_threshold": ("1 mib", MiB, "1M"),
    "spool_dir": ("none", None, "/no/such/directory/anywhere"),
    "max_memory_body_size": ("8MB", 8_000_000, ""),
    "basic_auth": ("u:p, v:q", (("u", "p"), ("v", "q")), "u-without-password"),
    "auth_realm": ("Relay", "Relay", 'a"b'),
    "allowed_ips": ("10.0.0.0/8, ::1", None, "10.0.0.5/8"),  # None: not compared, see below
    "allow_anonymous": ("Yes", True, "maybe"),
    "dedupe": ("memory", "memory", "mongodb"),
    "dedupe_ttl": ("60", 60, "1d"),
    "dedupe_max_entries": ("100", 100, "many"),
    "dedupe_claim_timeout": ("30", 30, "0"),
    "dedupe_lease": ("5", 5, "soon"),
    "max_concurrency": ("None", None, "unlimited"),
    "retry_after": ("7", 7, "later"),
    "metrics": ("on", True, "prometheus"),
    "metrics_path": ("none", None, "metrics"),
    "tracing": ("off", False, "jaeger"),
}


def test_every_option_has_examples_here() -> None:
    assert set(EXAMPLES) == set(FIELDS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_option_converts_a_config_string_and_a_keyword(name: str) -> None:
    text, expected, _ = EXAMPLES[name]
    from_config = getattr(Settings.from_mapping({"MM7_" + name.upper(): text}), name)
    from_keyword = getattr(Settings(**{name: text}), name)
    assert from_config == from_keyword
    if name == "allowed_ips":
        assert [str(network) for network in from_config] == ["10.0.0.0/8", "::1/128"]
    else:
        assert from_config == expected


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_bad_value_is_refused_naming_its_key(name: str) -> None:
    bad = EXAMPLES[name][2]
    key = "MM7_" + name.upper()
    with pytest.raises(ValueError, match=f"^{key}: ") as raised:
        Settings.from_mapping({key: bad})
    with pytest.raises(ValueError, match=f"^{name}: ") as by_keyword:
        Settings(**{name: bad})
    assert str(by_keyword.value) == str(raised.value).replace(key, name, 1)
    if name != "basic_auth":  # the value may be a password: never echoed
        assert repr(bad) in str(raised.value)


def test_the_error_says_what_was_expected() -> None:
    with pytest.raises(ValueError) as raised:
        Settings.from_mapping({"MM7_MAX_PARTS": "ten"})
    assert str(raised.value) == "MM7_MAX_PARTS: expected a positive whole number, got 'ten'"
    with pytest.raises(ValueError) as raised:
        MM7Middleware(max_content_length="64M")
    assert str(raised.value) == (
        'max_content_length: expected a size in bytes such as 65536, "512KiB" or "64 MiB",'
        " got '64M'"
    )


def test_a_password_never_appears_in_the_error() -> None:
    with pytest.raises(ValueError) as raised:
        Settings.from_mapping({"MM7_BASIC_AUTH": "relay-secret-without-colon"})
    assert "relay-secret" not in str(raised.value)
    assert str(raised.value).startswith("MM7_BASIC_AUTH: expected 'user:password")


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (65536, 65536),
        ("65536", 65536),
        ("512KiB", 512 * 1024),
        ("512 KiB", 512 * 1024),
        ("64MiB", 64 * MiB),
        ("2 GiB", 2 * 1024 * MiB),
        ("1gib", 1024 * MiB),
        ("8MB", 8_000_000),
        ("8 mb", 8_000_000),
        ("1KB", 1000),
        ("3GB", 3_000_000_000),
        ("100 B", 100),
        ("1.5MiB", 3 * MiB // 2),
    ],
)
def test_sizes_accept_binary_and_decimal_units(value: t.Any, size: int) -> None:
    assert Settings(max_content_length=value).max_content_length == size
    assert Settings.from_mapping({"MM7_MAX_SOAP_SIZE": value}).max_soap_size == size


@pytest.mark.parametrize(
    "value", [0, "0", "0 KiB", -5, True, 1.5, "1.5", "1.1 KiB", "64M", "64 MiBs", "KiB", None]
)
def test_sizes_refuse_what_is_no_positive_whole_byte_count(value: t.Any) -> None:
    with pytest.raises(ValueError, match="^MM7_SPOOL_THRESHOLD: expected a size in bytes"):
        Settings.from_mapping({"MM7_SPOOL_THRESHOLD": value})


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        *[(word, True) for word in ("true", "True", "YES", "on", "1", " yes ", 1, True)],
        *[(word, False) for word in ("false", "FALSE", "no", "Off", "0", "", 0, False)],
    ],
)
def test_booleans_accept_the_usual_words_in_any_case(value: t.Any, flag: bool) -> None:
    assert Settings.from_mapping({"MM7_ALLOW_ANONYMOUS": value}).allow_anonymous is flag
    assert Settings(allow_anonymous=value).allow_anonymous is flag


@pytest.mark.parametrize("value", ["maybe", "2", 2, None, "none", 1.0, "tru"])
def test_booleans_refuse_anything_else(value: t.Any) -> None:
    with pytest.raises(ValueError, match="^allow_anonymous: expected true or false"):
        Settings(allow_anonymous=value)


@pytest.mark.parametrize("value", [None, "", "none", "None", " NONE "])
def test_none_forms(value: t.Any) -> None:
    names = ["max_concurrency", "spool_dir", "basic_auth", "allowed_ips", "dedupe"]
    settings = Settings.from_mapping({"MM7_" + name.upper(): value for name in names})
    assert [getattr(settings, name) for name in names] == [None] * len(names)
    assert [getattr(Settings(**{name: value}), name) for name in names] == [None] * len(names)


def test_whole_numbers_refuse_what_is_not_one() -> None:
    for value in (0, -1, True, 1.0, "1.0", "1e3", "", None, "ten"):
        with pytest.raises(ValueError, match="^max_parts: expected a positive whole number"):
            Settings(max_parts=value)


def test_converted_values_survive_a_second_conversion(tmp_path: pathlib.Path) -> None:
    """``MM7Middleware(settings=..., **more)`` re-checks every field: each converter takes its
    own output back unchanged."""
    settings = Settings.from_mapping(
        {"MM7_BASIC_AUTH": "u:p", "MM7_ALLOWED_IPS": "10.0.0.0/8", "MM7_SPOOL_DIR": str(tmp_path)}
    )
    again = dataclasses.replace(settings, max_parts=3)
    assert again.max_parts == 3
    for field in FIELDS:
        if field != "max_parts":
            assert getattr(again, field) == getattr(settings, field), field


# ------------------------------------------------------------------------ unknown MM7_* keys


def test_an_unknown_key_is_a_warning_naming_the_closest_known_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    app = Flask(__name__)
    app.config.update(
        MM7_BASICAUTH="u:p",
        MM7_MAXPARTS="3",
        MM7_FROBNICATE=1,
        MM7_SEND_PASSWORD="the CLI's own variable",  # not a setting, not warned about
        SECRET_KEY="x",  # not ours
    )
    MM7(app, allow_anonymous=True)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flask_mm7._config"]
    assert sorted(warnings) == [
        "unknown setting MM7_BASICAUTH (did you mean MM7_BASIC_AUTH?)",
        "unknown setting MM7_FROBNICATE (not a flask-mm7 setting)",
        "unknown setting MM7_MAXPARTS (did you mean MM7_MAX_PARTS?)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name.endswith("config"))


def test_known_keys_alone_warn_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    app = Flask(__name__)
    app.config.update(MM7_BASIC_AUTH="u:p", MM7_MAX_PARTS="3")
    MM7(app)
    assert [r for r in caplog.records if r.name == "flask_mm7._config"] == []


def test_an_unknown_keyword_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(TypeError, match=r"basicauth \(did you mean basic_auth\?\)"):
        MM7(basicauth="u:p")


def test_settings_from_the_environment_through_flask(monkeypatch: pytest.MonkeyPatch) -> None:
    """``app.config.from_prefixed_env()`` loads JSON where it parses (``1`` is an int), strings
    otherwise: both reach the receiver as the table's values."""
    monkeypatch.setenv("FLASK_MM7_MAX_CONTENT_LENGTH", "2 MiB")
    monkeypatch.setenv("FLASK_MM7_MAX_PARTS", "12")
    monkeypatch.setenv("FLASK_MM7_ALLOW_ANONYMOUS", "1")
    monkeypatch.setenv("FLASK_MM7_MAX_CONCURRENCY", "null")
    app = Flask(__name__)
    app.config.from_prefixed_env()
    MM7(app)
    settings = MM7.settings_for(app)
    assert (settings.max_content_length, settings.max_parts) == (2 * MiB, 12)
    assert settings.allow_anonymous is True and settings.max_concurrency is None
    response = app.test_client().post("/mm7", data=b"x" * (2 * MiB + 1), content_type="text/xml")
    assert response.status_code == 413


# ------------------------------------------------------------------- one table, one set of defaults


def test_settings_defaults_are_the_table_defaults() -> None:
    settings = Settings()
    for name, field in FIELDS.items():
        assert getattr(settings, name) == field.default, name
        assert getattr(DEFAULTS, name) == field.default, name
    assert Settings.config_defaults()["MM7_MAX_PARTS"] == FIELDS["max_parts"].default


def test_the_internals_take_their_defaults_from_the_table(tmp_path: pathlib.Path) -> None:
    settings = Settings()
    assert Limits() == DEFAULT_LIMITS == settings.limits
    decoder = MultipartDecoder(b"b")
    assert (decoder.max_parts, decoder.max_depth, decoder.max_header_size) == (
        settings.max_parts,
        settings.max_depth,
        settings.max_part_header_size,
    )
    memory = MemoryStore()
    assert (memory.ttl, memory.max_entries, memory.claim_timeout) == (
        settings.dedupe_ttl,
        settings.dedupe_max_entries,
        settings.dedupe_claim_timeout,
    )
    sqlite = SQLiteStore(str(tmp_path / "d.db"))
    assert (sqlite.ttl, sqlite.claim_timeout, sqlite.lease) == (
        settings.dedupe_ttl,
        settings.dedupe_claim_timeout,
        settings.dedupe_lease,
    )


def test_the_docstring_and_the_markdown_table_list_every_option() -> None:
    doc = Settings.__doc__ or ""
    table = markdown_table()
    for name, field in FIELDS.items():
        assert f"``{name}``" in doc and field.metadata["meaning"] in doc
        assert f"| `MM7_{name.upper()}` |" in table
    assert "| `MM7_MAX_CONTENT_LENGTH` | 64 MiB |" in table
    assert '| `MM7_PATH` | `"/mm7"` |' in table
    assert "| `MM7_SPOOL_DIR` | system temp dir |" in table
    assert "| `MM7_MAX_CONCURRENCY` | `None` |" in table
