"""The ``mm7`` command line: send a simulated relay request to a receiver and say what it
answered.

Usable as ``flask mm7 send [URL]`` (the extension registers the group; without a URL the
request goes to the app in process), ``mm7 send URL`` (console script) and
``python -m flask_mm7 send URL``. Requests are built by :mod:`flask_mm7.testing` and sent with
the stdlib :mod:`http.client`; only the URL-less ``flask mm7 send`` needs a Flask app.

Credentials never reach the terminal: URLs are printed with their ``user:password@`` part
replaced by ``***@``.

.. code-block:: text

    $ mm7 send http://127.0.0.1:5000/mm7 --subject Hi -a cat.jpg
    1000 Success (DeliverRsp, TransactionID 369171411769819136)
"""

from __future__ import annotations

import base64
import http.client
import mimetypes
import os
import socket
import ssl
import sys
import typing as t
import urllib.parse

import click

from . import testing

if t.TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

__all__ = ["main", "mm7", "send"]

#: bodies larger than this are sent in chunks with a progress bar (on a TTY or --progress)
PROGRESS_THRESHOLD = 1024 * 1024
#: chunk size for streaming the body
CHUNK_SIZE = 64 * 1024
#: exit status when the reply is not a success (non-1000 status, Fault, non-200 HTTP status)
EXIT_NOT_OK = 1
#: exit status when the request could not be sent or no reply was received
EXIT_TRANSPORT = 3

#: headers that belong to the connection, not the request; the sender writes its own
_HOP_HEADERS = frozenset({"host", "connection", "content-length", "transfer-encoding"})
#: OpenSSL's reasons when the other end does not speak TLS (e.g. a plain HTTP port)
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)
_PATH_HINT = "is the path right? flask-mm7's default is /mm7"


@click.group("mm7")
@click.version_option(
    package_name="flask-mm7", prog_name="mm7", message="%(prog)s (flask-mm7) %(version)s"
)
def mm7() -> None:
    """Simulate an MM7 relay (such as OpenMarket) against an MM7 receiver."""


@mm7.command("send")
@click.argument("url", required=False)
@click.option(
    "-a",
    "--attach",
    "attach",
    multiple=True,
    metavar="FILE",
    help="Attach FILE ('-' reads stdin; 'FILE;type=image/png' sets the type). Repeatable.",
)
@click.option(
    "--type",
    "mimetype",
    metavar="MIMETYPE",
    help="Mimetype for attachments whose type cannot be guessed from the name (and stdin).",
)
@click.option("--text", help="Add a text/plain part.")
@click.option("--subject", help="The Subject element.")
@click.option("--sender", help="Sender address [deliver: 12125550123; reports: 222111].")
@click.option(
    "--recipient",
    multiple=True,
    help="Recipient address (repeatable) [deliver: 222111; reports: 12125550123].",
)
@click.option("--mm7-version", "version", default="6.8.0", show_default=True)
@click.option("--namespace", help="MM7 namespace [derived from --mm7-version].")
@click.option("--transaction-id", help="TransactionID [random].")
@click.option("--user", help="HTTP Basic user name (or put user:password@ in the URL).")
@click.option(
    "--password", envvar="MM7_SEND_PASSWORD", help="HTTP Basic password [$MM7_SEND_PASSWORD]."
)
@click.option("--report", is_flag=True, help="Send a DeliveryReportReq instead.")
@click.option("--read-reply", is_flag=True, help="Send a ReadReplyReq instead.")
@click.option("--message-id", help="MessageID for --report / --read-reply.")
@click.option("--status", "mm_status", help="MMStatus [Retrieved; Read for --read-reply].")
@click.option("--seed-example", is_flag=True, help="Send the aggregator's example as printed.")
@click.option(
    "--dump",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Write the request (HTTP head and body, as it would be sent) to FILE; send nothing.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option(
    "-k", "--insecure", is_flag=True, help="Do not verify the https certificate (local tests)."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar [on a TTY, >1 MiB].")
@click.option("-v", "--verbose", is_flag=True, help="Also print the status line, headers and body.")
@click.pass_context
def send(
    ctx: click.Context,
    url: str | None,
    attach: tuple[str, ...],
    mimetype: str | None,
    text: str | None,
    subject: str | None,
    sender: str | None,
    recipient: tuple[str, ...],
    version: str,
    namespace: str | None,
    transaction_id: str | None,
    user: str | None,
    password: str | None,
    report: bool,
    read_reply: bool,
    message_id: str | None,
    mm_status: str | None,
    seed_example: bool,
    dump: str | None,
    timeout: float,
    insecure: bool,
    progress: bool | None,
    verbose: bool,
) -> None:
    """POST a DeliverReq (or a report, or the seed example) to URL and print the reply.

    As ``flask mm7 send`` without URL, the request goes to the app itself in process (its
    test client, its MM7_PATH and its first MM7_BASIC_AUTH credentials): no server needed.

    Exits 0 on StatusCode 1000, 1 on any other status, a Fault or a non-200 HTTP status,
    3 when the request could not be sent.
    """
    if sum((report, read_reply, seed_example)) > 1:
        raise click.UsageError("choose one of --report, --read-reply and --seed-example")
    app = parts = None
    if url is None:
        app = _flask_app(ctx)
        if app is None:
            raise click.UsageError(
                "Missing argument 'URL' (only 'flask mm7 send' may leave it out: it then"
                " posts to the app in process)"
            )
        if dump is not None:
            raise click.UsageError("--dump needs a URL (for the request line and Host)")
    else:
        parts = _parse_url(url)
        if parts.username is not None and user is None:
            user = urllib.parse.unquote(parts.username)
            if password is None and parts.password is not None:
                password = urllib.parse.unquote(parts.password)
    if user is not None and password is None:
        raise click.UsageError("--user needs --password (or MM7_SEND_PASSWORD)")

    if seed_example:
        request = testing.seed_example()
    elif report or read_reply:
        if not message_id:
            raise click.UsageError("--report and --read-reply need --message-id")
        builder = testing.build_read_reply if read_reply else testing.build_delivery_report
        kwargs: dict[str, t.Any] = {}
        if mm_status:
            kwargs["mm_status"] = mm_status
        request = builder(
            message_id=message_id,
            recipient=recipient[0] if recipient else "12125550123",
            sender=sender or "222111",
            version=version,
            namespace=namespace,
            transaction_id=transaction_id,
            **kwargs,
        )
    else:
        request = testing.build_deliver(
            sender=sender or "12125550123",
            recipients=recipient or ("222111",),
            subject=subject,
            text=text,
            attachments=[_read_attachment(a, mimetype) for a in attach],
            version=version,
            namespace=namespace,
            transaction_id=transaction_id,
        )

    if app is not None:
        reply, status_line, where = _post_in_process(app, request, user, password)
    else:
        assert parts is not None
        where = _redact(parts)
        target, headers = _request_head(parts, request, user, password)
        body = request.body
        if dump is not None:
            head_size = _dump(dump, target, headers, body, private=user is not None)
            click.echo(
                f"Wrote {dump}: POST {where}, a {head_size}-byte head and a {len(body)}-byte"
                f" body (TransactionID {request.transaction_id})"
            )
            ctx.exit(0)
        if progress is None:
            progress = len(body) > PROGRESS_THRESHOLD and sys.stderr.isatty()
        try:
            reply, status_line = _send(parts, target, headers, body, timeout, progress, insecure)
        except (OSError, http.client.HTTPException, UnicodeError) as e:
            click.echo(f"Error: cannot send to {where}: {_explain(e, parts, timeout)}", err=True)
            ctx.exit(EXIT_TRANSPORT)
    if verbose:
        click.echo(f"POST {where}")
        click.echo(status_line)
        for name, value in reply.headers.items():
            click.echo(f"{name}: {value}")
        click.echo()
        click.echo(reply.body.decode("utf-8", "replace"))
    click.echo(_summarize(reply))
    ctx.exit(0 if reply.ok else EXIT_NOT_OK)


def _redact(url: str | urllib.parse.SplitResult) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: safe to print."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else url
    _userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return urllib.parse.urlunsplit(parts)
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + hostport))


def _summarize(reply: testing.MM7Reply) -> str:
    """One line for ``reply``: its MM7 summary, or, when it is not SOAP, what it is instead
    (the HTTP status and Content-Type) and what to check."""
    if reply.operation is not None:
        return reply.summary
    status = reply.http_status
    reason = http.client.responses.get(status, "")
    content_type = _header(reply, "Content-Type")
    if not reply.body.strip():
        what = "an empty reply"
    elif content_type is None:
        what = "not SOAP (no Content-Type)"
    elif "xml" in content_type.lower():
        what = f"not an MM7 reply ({reply.error})"
    else:
        what = f"not SOAP (Content-Type {content_type})"
    location = _header(reply, "Location")
    if 300 <= status < 400 and location:
        hint = f"it redirects to {_redact(location)}; send to that URL"
    elif status in (404, 405):
        hint = _PATH_HINT
    elif status == 413:
        hint = "something in front of the app limits the body size (nginx: client_max_body_size)"
    elif status in (502, 503, 504):
        hint = "a proxy could not reach the app: is it running?"
    elif status in (401, 403):
        hint = "something in front of the app refused it (credentials, allowed addresses)"
    else:
        hint = "is this the receiver's MM7 URL? " + _PATH_HINT
    return f"{f'HTTP {status} {reason}'.rstrip()}: {what}; {hint}"


def _header(reply: testing.MM7Reply, name: str) -> str | None:
    for key, value in reply.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _parse_url(url: str) -> urllib.parse.SplitResult:
    # the URL itself is never echoed here: it may hold a password
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError(
            "URL must be http:// or https:// with a host: http[s]://HOST[:PORT]/PATH"
        )
    try:
        parts.port  # noqa: B018 - urllib checks the port only when asked
    except ValueError:
        raise click.UsageError(f"URL has an invalid port: {_redact(parts)}") from None
    return parts


def _read_attachment(spec: str, default_type: str | None) -> testing.Media:
    path, _, option = spec.partition(";type=")
    mimetype = option or None
    if path == "-":
        data = sys.stdin.buffer.read()
        return testing.Media(data, mimetype or default_type or "application/octet-stream")
    if mimetype is None and mimetypes.guess_type(path)[0] is None:
        mimetype = default_type
    try:
        return testing.Media.from_path(path, mimetype=mimetype)
    except OSError as e:
        raise click.BadParameter(
            f"cannot read {path!r}: {_describe(e)}", param_hint="--attach"
        ) from None


def _request_head(
    url: urllib.parse.SplitResult,
    request: testing.MM7Request,
    user: str | None,
    password: str | None,
) -> tuple[str, list[tuple[str, str]]]:
    """The request target and headers: one list for both :func:`_send` and ``--dump``."""
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if url.port is not None:
        host += f":{url.port}"
    headers = [("Host", host)]
    headers += [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS]
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
        headers.append(("Authorization", f"Basic {token}"))
    headers.append(("Content-Length", str(len(request.body))))
    return target, headers


def _dump(
    path: str, target: str, headers: list[tuple[str, str]], body: bytes, private: bool
) -> int:
    """Write the request as :mod:`http.client` sends it; the size of its head."""
    lines = [f"POST {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), ""]
    # header values are str holding Latin-1 wire bytes (the seed example's NBSPs)
    head = "".join(line + "\r\n" for line in lines).encode("latin-1")
    # a file holding an Authorization header is readable by its owner only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with open(fd, "wb") as f:
        f.write(head)
        f.write(body)
    return len(head)


def _send(
    url: urllib.parse.SplitResult,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout: float,
    progress: bool,
    insecure: bool = False,
) -> tuple[testing.MM7Reply, str]:
    """POST ``body`` with ``headers``; the reply and its status line."""
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            url.hostname or "", url.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    try:
        conn.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        chunks = range(0, len(body), CHUNK_SIZE)
        if progress:
            with click.progressbar(length=len(body), label="Sending", file=sys.stderr) as bar:
                for start in chunks:
                    conn.send(body[start : start + CHUNK_SIZE])
                    bar.update(min(CHUNK_SIZE, len(body) - start))
        else:
            for start in chunks:
                conn.send(body[start : start + CHUNK_SIZE])
        response = conn.getresponse()
        try:
            data = response.read()
        finally:
            response.close()
        protocol = "HTTP/1.0" if response.version == 10 else "HTTP/1.1"
        status_line = f"{protocol} {response.status} {response.reason}"
        return testing.parse_reply(response.status, response.getheaders(), data), status_line
    finally:
        conn.close()


def _explain(error: BaseException, url: urllib.parse.SplitResult, timeout: float) -> str:
    """A transport error in words, with what to check; never the URL's credentials."""
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the server's certificate is not trusted ({error.verify_message});"
            " -k/--insecure skips the check for local tests"
        )
    if isinstance(error, ssl.SSLError):
        if getattr(error, "reason", None) in _NOT_TLS_REASONS:
            return (
                f"TLS handshake failed ({error.reason}): the port does not speak TLS;"
                " if it is plain HTTP, use http://"
            )
        return f"TLS handshake failed ({getattr(error, 'reason', None) or error})"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no reply within {timeout:g} s (--timeout)"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused: nothing listens on {host}:{port}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host!r} ({error.strerror})"
    if isinstance(error, (http.client.BadStatusLine, ConnectionResetError)):
        words = "the server closed the connection without an HTTP reply"
        if url.scheme == "http":
            words += "; if the port speaks TLS, use https://"
        return words
    return _describe(error)


def _describe(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _flask_app(ctx: click.Context) -> Flask | None:
    """The app of the ``flask`` command this runs under, or None (the ``mm7`` script)."""
    from flask.cli import ScriptInfo

    info = ctx.find_object(ScriptInfo)
    return None if info is None else info.load_app()


def _post_in_process(
    app: Flask, request: testing.MM7Request, user: str | None, password: str | None
) -> tuple[testing.MM7Reply, str, str]:
    """POST ``request`` to ``app`` through its test client, as its configured relay would:
    at its MM7_PATH, with its first credentials (unless given) and from an allowed address."""
    from . import _auth
    from ._extension import MM7

    if "mm7" not in app.extensions:
        raise click.UsageError("the app has no MM7 receiver: call MM7(app) or init_app(app)")
    settings = MM7.settings_for(app)
    credentials = _auth.parse_credentials(settings.basic_auth)
    if user is None and credentials:
        user, password = credentials[0]
    networks = _auth.parse_networks(settings.allowed_ips)
    remote = str(networks[0].network_address) if networks else "127.0.0.1"
    environ = request.environ(
        settings.path, auth=(user, password or "") if user is not None else None
    )
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = remote  # the client's own base wins over the environ's
    response = client.open(environ)
    try:
        reply = testing.parse_reply(
            response.status_code, list(response.headers.items()), response.get_data()
        )
    finally:
        response.close()
    status_line = f"{environ['SERVER_PROTOCOL']} {response.status}"
    return reply, status_line, f"{settings.path} (app {app.name}, in process)"


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the ``mm7`` command line; returns the exit status instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = mm7.main(args=args, prog_name="mm7", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
