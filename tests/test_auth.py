"""Basic auth and the source-address allowlist: 401/403 before the body is read, through both
adapters; timing-safe comparison; the startup warning; ProxyFix placement."""

from __future__ import annotations

import base64
import hmac
import logging
import typing as t
from unittest import mock

import pytest
from conftest import Harness
from flask import Flask
from helpers import mm7_body
from hypothesis import given, settings
from hypothesis import strategies as st
from sec_helpers import CountingInput, fault, post_stream
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from flask_mm7 import MM7, MM7Middleware
from flask_mm7._auth import BasicAuth, IPAllowlist, parse_credentials, parse_networks
from flask_mm7._config import Settings

KINDS = ["middleware", "extension"]
CREDENTIALS = "relay:s3cret,backup:pa:ss:word"
CHALLENGE = 'Basic realm="MM7", charset="UTF-8"'
FIFTY_MB = 50 * 1024 * 1024


def basic(user: bytes | str, password: bytes | str) -> str:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def post(harness: Harness, headers: dict[str, str] | None = None, **kwargs: t.Any) -> t.Any:
    body, content_type = mm7_body()
    return harness.post(body, content_type, headers=headers, **kwargs)


# --------------------------------------------------------------------------- Basic auth


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(basic("relay", "s3cret"), id="first-pair"),
        pytest.param(basic("backup", "pa:ss:word"), id="second-pair-colons-in-password"),
        pytest.param("basic " + basic("relay", "s3cret")[6:], id="scheme-lower-case"),
        pytest.param("BASIC   " + basic("relay", "s3cret")[6:] + " ", id="scheme-upper-spaces"),
    ],
)
def test_right_credentials_reach_the_handler(kind: str, authorization: str) -> None:
    harness = Harness(kind, basic_auth=CREDENTIALS)
    response = post(harness, {"Authorization": authorization})
    assert response.status_code == 200
    assert len(harness.calls) == 1
    # the credentials never reach the handler
    assert "Authorization" not in harness.calls[0].headers
    assert "s3cret" not in repr(harness.calls[0].headers)


BAD_AUTHORIZATION = [
    pytest.param(None, id="no-header"),
    pytest.param("", id="empty-header"),
    pytest.param(basic("relay", "wrong"), id="wrong-password"),
    pytest.param(basic("nobody", "s3cret"), id="wrong-user"),
    pytest.param(basic("", "s3cret"), id="empty-user"),
    pytest.param(basic("relay", ""), id="empty-password"),
    pytest.param(basic("backup", "s3cret"), id="other-users-password"),
    pytest.param(basic("relay", "s3cret:"), id="password-with-extra-colon"),
    pytest.param(basic("relay:s3cret", ""), id="colon-moved"),
    pytest.param(basic("backup", "pa"), id="password-cut-at-colon"),
    pytest.param(basic(b"relay", b"s3cr\xe9t"), id="latin-1-password"),
    pytest.param(basic(b"\xff\xfe", b"\x80"), id="non-utf8-bytes"),
    pytest.param("Basic " + base64.b64encode(b"relays3cret").decode(), id="no-colon"),
    pytest.param("Basic !!!not-base64!!!", id="bad-base64"),
    pytest.param("Basic cmVsYXk6czNjcmV", id="bad-padding"),
    pytest.param("Basic", id="basic-without-token"),
    pytest.param("Basic ", id="basic-with-empty-token"),
    pytest.param("Bearer eyJhbGciOiJub25lIn0.e30.", id="bearer"),
    pytest.param('Digest username="relay", realm="MM7", nonce="x"', id="digest"),
    pytest.param("cmVsYXk6czNjcmV0", id="token-without-scheme"),
    pytest.param("Basic\u00e9 " + basic("relay", "s3cret")[6:], id="non-ascii-scheme"),
    pytest.param("Basic \u00e9\u00e9\u00e9\u00e9", id="non-ascii-token"),
    pytest.param("Basic " + "A" * 100_000, id="huge-token"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION)
def test_bad_credentials_are_401_before_the_body_is_read(
    kind: str, authorization: str | None
) -> None:
    harness = Harness(kind, basic_auth=CREDENTIALS)
    stream = CountingInput(b"x" * 1024)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = post_stream(
        harness, stream, "multipart/related; boundary=b", content_length=FIFTY_MB,
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert fault(response) == ("Client", "4001")
    assert stream.bytes_read == 0
    assert harness.calls == []


@pytest.mark.parametrize("kind", KINDS)
def test_401_also_for_other_methods_on_the_path(kind: str) -> None:
    harness = Harness(kind, basic_auth=CREDENTIALS)
    assert harness.client.get("/mm7").status_code == 401
    response = harness.client.get("/mm7", headers={"Authorization": basic("relay", "s3cret")})
    assert response.status_code == 405


@pytest.mark.parametrize("kind", KINDS)
def test_other_paths_are_not_protected(kind: str) -> None:
    harness = Harness(kind, basic_auth=CREDENTIALS)
    response = harness.post(b"hello", "text/plain", path="/other")
    assert response.status_code == 200
    assert harness.reached == [b"hello"]


def test_realm_is_configurable() -> None:
    harness = Harness("middleware", basic_auth=CREDENTIALS, auth_realm="inbound MMS")
    response = post(harness)
    assert response.headers["WWW-Authenticate"] == 'Basic realm="inbound MMS", charset="UTF-8"'


@pytest.mark.parametrize(
    "authorization",
    [
        basic("relay", "s3cret"),
        basic("relay", "nope"),
        basic("x", "y"),
        "Basic !!",
        None,
        "Bearer x",
    ],
)
def test_compare_digest_on_user_and_password_for_every_pair_every_time(
    authorization: str | None,
) -> None:
    harness = Harness("middleware", basic_auth=CREDENTIALS)
    headers = {} if authorization is None else {"Authorization": authorization}
    with mock.patch("hmac.compare_digest", wraps=hmac.compare_digest) as spy:
        post(harness, headers)
    # 2 pairs configured: user and password compared for each, whatever the header holds
    assert spy.call_count == 4
    for call in spy.call_args_list:
        assert all(isinstance(arg, bytes) for arg in call.args)
    expected = [b"relay", b"s3cret", b"backup", b"pa:ss:word"]
    assert [call.args[1] for call in spy.call_args_list] == expected


def test_basic_auth_unit() -> None:
    auth = BasicAuth((("u", "p"), ("ü", "pässword")))
    assert auth.check(basic("u", "p"))
    assert auth.check(basic("ü", "pässword"))  # UTF-8 on the wire (charset="UTF-8")
    assert not auth.check(basic("ü".encode("latin-1"), "pässword".encode("latin-1")))
    assert not auth.check(None)
    assert "p" not in repr(auth).replace("BasicAuth", "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("u:p", (("u", "p"),)),
        (" u:p , v:a:b ,", (("u", "p"), ("v", "a:b"))),
        ({"u": "p"}, (("u", "p"),)),
        (("u", "p"), (("u", "p"),)),
        ([("u", "p"), ("v", "q")], (("u", "p"), ("v", "q"))),
        (None, None),
        ("", None),
    ],
)
def test_credential_forms(value: t.Any, expected: t.Any) -> None:
    assert parse_credentials(value) == expected
    assert Settings(basic_auth=value).basic_auth == expected


@pytest.mark.parametrize("value", ["nocolon", ":p", "u:", [("u:x", "p")], [("u", 1)]])
def test_invalid_credentials_fail_at_setup(value: t.Any) -> None:
    with pytest.raises(ValueError):
        Settings(basic_auth=value)
    with pytest.raises(ValueError):
        MM7(basic_auth=value)


@pytest.mark.parametrize("realm", ['a"b', "a\\b", "a\r\nX-Evil: 1", "", "réalm"])
def test_invalid_realm_fails_at_setup(realm: str) -> None:
    with pytest.raises(ValueError):
        Settings(auth_realm=realm)


def test_credentials_are_not_in_the_settings_repr_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_mm7")
    settings = Settings(basic_auth=CREDENTIALS)
    assert "s3cret" not in repr(settings)
    harness = Harness("middleware", settings=settings)
    post(harness, {"Authorization": basic("relay", "s3cret")})
    post(harness, {"Authorization": basic("relay", "wrong-s3cret")})
    assert "s3cret" not in caplog.text
    assert basic("relay", "s3cret")[6:] not in caplog.text


def test_basic_auth_from_flask_config() -> None:
    app = Flask("cfg")
    app.config["MM7_BASIC_AUTH"] = CREDENTIALS
    mm7 = MM7(app)
    calls: list[t.Any] = []
    mm7.on_deliver(calls.append)
    client = app.test_client()
    body, content_type = mm7_body()
    headers = {"Content-Type": content_type}
    assert client.post("/mm7", data=body, headers=headers).status_code == 401
    headers["Authorization"] = basic("backup", "pa:ss:word")
    assert client.post("/mm7", data=body, headers=headers).status_code == 200
    assert len(calls) == 1
    assert MM7.settings_for(app).basic_auth == (("relay", "s3cret"), ("backup", "pa:ss:word"))


# --------------------------------------------------------------------------- IP allowlist

ALLOWED = "203.0.113.0/24, 2001:db8::/32,::1 192.0.2.7"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("remote_addr", "status"),
    [
        pytest.param("203.0.113.5", 200, id="v4-in-cidr"),
        pytest.param("203.0.113.255", 200, id="v4-cidr-edge"),
        pytest.param("192.0.2.7", 200, id="v4-single-address"),
        pytest.param("192.0.2.8", 403, id="v4-next-to-single"),
        pytest.param("203.0.114.1", 403, id="v4-outside"),
        pytest.param("::1", 200, id="v6-loopback"),
        pytest.param("2001:db8:1::42", 200, id="v6-in-cidr"),
        pytest.param("2001:db9::1", 403, id="v6-outside"),
        pytest.param("::ffff:203.0.113.5", 200, id="v4-mapped-v6-inside"),
        pytest.param("::ffff:198.51.100.1", 403, id="v4-mapped-v6-outside"),
        pytest.param("127.0.0.1", 403, id="v4-loopback-not-listed"),
        pytest.param("unknown", 403, id="not-an-address"),
        pytest.param("", 403, id="empty"),
        pytest.param("203.0.113.5, 10.0.0.1", 403, id="list-is-not-an-address"),
    ],
)
def test_allowlist(kind: str, remote_addr: str, status: int) -> None:
    harness = Harness(kind, allowed_ips=ALLOWED)
    stream = CountingInput(b"x" * 64)
    body, content_type = mm7_body()
    if status == 200:
        response = harness.post(body, content_type, environ_overrides={"REMOTE_ADDR": remote_addr})
    else:
        response = post_stream(
            harness, stream, content_type, content_length=FIFTY_MB,
            environ_overrides={"REMOTE_ADDR": remote_addr},
        )  # fmt: skip
        assert fault(response) == ("Client", "4007")
        assert stream.bytes_read == 0
    assert response.status_code == status
    assert len(harness.calls) == (status == 200)


@pytest.mark.parametrize("kind", KINDS)
def test_x_forwarded_for_is_ignored_without_proxy_fix(kind: str) -> None:
    harness = Harness(kind, allowed_ips="203.0.113.0/24")
    response = post(
        harness,
        {
            "X-Forwarded-For": "203.0.113.5",
            "X-Real-Ip": "203.0.113.5",
            "Forwarded": "for=203.0.113.5",
        },
        environ_overrides={"REMOTE_ADDR": "198.51.100.1"},
    )
    assert response.status_code == 403


def test_proxy_fix_outside_the_middleware() -> None:
    calls: list[t.Any] = []
    inner = MM7Middleware(None, allowed_ips="203.0.113.0/24", on_deliver=calls.append)
    client = Client(ProxyFix(inner, x_for=1))
    body, content_type = mm7_body()

    def send(forwarded_for: str) -> int:
        response = client.post(
            "/mm7", data=body,
            headers={"Content-Type": content_type, "X-Forwarded-For": forwarded_for},
            environ_overrides={"REMOTE_ADDR": "10.0.0.2"},  # the proxy
        )  # fmt: skip
        return response.status_code

    assert send("203.0.113.5") == 200
    # the client's own X-Forwarded-For value comes first; the proxy appends the real address
    assert send("203.0.113.5, 198.51.100.1") == 403
    assert send("198.51.100.1, 203.0.113.5") == 200
    assert len(calls) == 2


def test_proxy_fix_with_the_flask_extension() -> None:
    app = Flask("proxied")
    app.config["MM7_ALLOWED_IPS"] = "203.0.113.0/24"
    mm7 = MM7(app)
    calls: list[t.Any] = []
    mm7.on_deliver(calls.append)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    client = app.test_client()
    body, content_type = mm7_body()
    headers = {"Content-Type": content_type, "X-Forwarded-For": "203.0.113.9"}
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    assert client.post("/mm7", data=body, headers=headers, environ_base=proxy).status_code == 200
    headers["X-Forwarded-For"] = "198.51.100.1"
    assert client.post("/mm7", data=body, headers=headers, environ_base=proxy).status_code == 403
    assert len(calls) == 1


def test_proxy_fix_inside_the_middleware_does_not_count() -> None:
    """ProxyFix applied *before* MM7(app) sits inside our middleware: it runs too late."""
    app = Flask("wrong-order")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    mm7 = MM7(app, allowed_ips="203.0.113.0/24")
    mm7.on_deliver(lambda msg: None)
    body, content_type = mm7_body()
    response = app.test_client().post(
        "/mm7", data=body,
        headers={"Content-Type": content_type, "X-Forwarded-For": "203.0.113.9"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )  # fmt: skip
    assert response.status_code == 403


@pytest.mark.parametrize("kind", KINDS)
def test_allowlist_is_checked_before_credentials(kind: str) -> None:
    harness = Harness(kind, allowed_ips="203.0.113.0/24", basic_auth=CREDENTIALS)
    outside = {"REMOTE_ADDR": "198.51.100.1"}
    inside = {"REMOTE_ADDR": "203.0.113.1"}
    good = {"Authorization": basic("relay", "s3cret")}
    response = post(harness, good, environ_overrides=outside)
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    assert post(harness, {}, environ_overrides=inside).status_code == 401
    assert post(harness, good, environ_overrides=inside).status_code == 200


def test_allowlist_unit() -> None:
    allow = IPAllowlist(parse_networks(["10.0.0.0/8", "fe80::/10"]) or ())
    assert allow.allows("10.1.2.3")
    assert allow.allows("fe80::1%eth0")
    assert allow.allows("[fe80::1]")
    assert allow.allows("::ffff:10.0.0.1")
    assert not allow.allows("::ffff:11.0.0.1")
    assert not allow.allows(None)
    assert "10.0.0.0/8" in repr(allow)
    mapped = IPAllowlist(parse_networks("::ffff:192.0.2.0/120") or ())
    assert mapped.allows("192.0.2.9") and mapped.allows("::ffff:192.0.2.9")
    assert not mapped.allows("192.0.3.9")


def test_normalised_settings_survive_replace() -> None:
    settings = Settings(basic_auth=CREDENTIALS, allowed_ips=ALLOWED)
    middleware = MM7Middleware(settings=settings, path="/inbound", allow_anonymous=False)
    assert middleware.settings.basic_auth == settings.basic_auth
    assert middleware.settings.allowed_ips == settings.allowed_ips
    assert middleware.settings.path == "/inbound"


@pytest.mark.parametrize("value", ["10.0.0.5/8", "not-an-ip", "10.0.0.0/33", [42.5]])
def test_invalid_networks_fail_at_setup(value: t.Any) -> None:
    with pytest.raises(ValueError):
        Settings(allowed_ips=value)


def test_allowed_ips_from_flask_config() -> None:
    app = Flask("cfg")
    app.config["MM7_ALLOWED_IPS"] = "203.0.113.0/24,::1"
    MM7(app)
    assert [str(n) for n in MM7.settings_for(app).allowed_ips] == ["203.0.113.0/24", "::1/128"]


# --------------------------------------------------------------------------- startup warning

WARNING = "accepts MM7 requests on /mm7 from anyone"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("kind", KINDS)
def test_startup_warning_without_auth_or_allowlist(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    Harness(kind)
    [message] = _warnings(caplog)
    assert WARNING in message and "allow_anonymous" in message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "options",
    [
        {"allow_anonymous": True},
        {"basic_auth": "u:p"},
        {"allowed_ips": "10.0.0.0/8"},
    ],
    ids=["allow-anonymous", "basic-auth", "allowlist"],
)
def test_no_startup_warning_when_configured(
    kind: str, options: dict[str, t.Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    Harness(kind, **options)
    assert _warnings(caplog) == []


@pytest.mark.parametrize(("value", "warned"), [("true", False), ("1", False), ("false", True)])
def test_allow_anonymous_from_flask_config(
    value: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    app = Flask("cfg")
    app.config["MM7_ALLOW_ANONYMOUS"] = value
    MM7(app)
    assert bool(_warnings(caplog)) is warned


# --------------------------------------------------------------------------- fuzzing

LATIN1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=200)


@settings(max_examples=300, deadline=None)
@given(header=st.one_of(LATIN1, LATIN1.map(lambda s: "Basic " + s), st.binary(max_size=80)))
def test_any_authorization_header_is_401_never_500(header: str | bytes) -> None:
    if isinstance(header, bytes):  # arbitrary credentials, properly encoded
        header = "Basic " + base64.b64encode(header).decode("ascii")
    middleware = MM7Middleware(basic_auth=CREDENTIALS)
    environ = {"REMOTE_ADDR": "192.0.2.1", "HTTP_AUTHORIZATION": header}
    reply = middleware.check_access(environ)  # type: ignore[arg-type]
    assert reply is not None and reply.status == 401


@settings(max_examples=300, deadline=None)
@given(remote_addr=st.one_of(LATIN1, st.ip_addresses().map(str)))
def test_any_remote_addr_is_allowed_or_403_never_500(remote_addr: str) -> None:
    allow = IPAllowlist(parse_networks(ALLOWED) or ())
    assert allow.allows(remote_addr) in (True, False)


def test_many_wrong_passwords_are_all_401() -> None:
    harness = Harness("middleware", basic_auth=CREDENTIALS)
    statuses = {
        post(harness, {"Authorization": basic("relay", f"guess-{i}")}).status_code
        for i in range(300)
    }
    assert statuses == {401}
    assert harness.calls == []
