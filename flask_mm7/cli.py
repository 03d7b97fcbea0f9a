"""The ``mm7`` command line: send a simulated relay request to a receiver and say what it
answered.

Usable as ``flask mm7 send URL`` (the extension registers the group), ``mm7 send URL`` (console
script) and ``python -m flask_mm7 send URL``. Requests are built by :mod:`flask_mm7.testing`
and sent with the stdlib :mod:`http.client`; nothing here needs a Flask app.

.. code-block:: text

    $ mm7 send http://127.0.0.1:5000/mm7 --subject Hi -a cat.jpg
    1000 Success (DeliverRsp, TransactionID 369171411769819136)
"""

from __future__ import annotations

import base64
import http.client
import mimetypes
import ssl
import sys
import typing as t
import urllib.parse

import click

from . import testing

__all__ = ["main", "mm7", "send"]

#: bodies larger than this are sent in chunks with a progress bar (on a TTY or --progress)
PROGRESS_THRESHOLD = 1024 * 1024
#: chunk size for streaming the body
CHUNK_SIZE = 64 * 1024
#: exit status when the reply is not a success (non-1000 status, Fault, non-200 HTTP status)
EXIT_NOT_OK = 1
#: exit status when the request could not be sent or no reply was received
EXIT_TRANSPORT = 3

#: headers that belong to the connection, not the request; http.client writes its own
_HOP_HEADERS = frozenset({"host", "connection", "content-length", "transfer-encoding"})


@click.group("mm7")
def mm7() -> None:
    """Simulate an MM7 relay (such as OpenMarket) against an MM7 receiver."""


@mm7.command("send")
@click.argument("url")
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
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option(
    "-k", "--insecure", is_flag=True, help="Do not verify the https certificate (local tests)."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar [on a TTY, >1 MiB].")
@click.option("-v", "--verbose", is_flag=True, help="Also print the reply's headers and body.")
@click.pass_context
def send(
    ctx: click.Context,
    url: str,
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
    timeout: float,
    insecure: bool,
    progress: bool | None,
    verbose: bool,
) -> None:
    """POST a DeliverReq (or a report, or the seed example) to URL and print the reply.

    Exits 0 on StatusCode 1000, 1 on any other status, a Fault or a non-200 HTTP status,
    3 when the request could not be sent.
    """
    if sum((report, read_reply, seed_example)) > 1:
        raise click.UsageError("choose one of --report, --read-reply and --seed-example")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError(f"URL must be http:// or https:// with a host, not {url!r}")
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

    if progress is None:
        progress = len(request.body) > PROGRESS_THRESHOLD and sys.stderr.isatty()
    try:
        reply = _send(parts, request, user, password, timeout, progress, insecure)
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        click.echo(f"Error: cannot send to {url}: {_describe(e)}", err=True)
        ctx.exit(EXIT_TRANSPORT)
    if verbose:
        for name, value in reply.headers.items():
            click.echo(f"{name}: {value}")
        click.echo()
        click.echo(reply.body.decode("utf-8", "replace"))
    click.echo(reply.summary)
    ctx.exit(0 if reply.ok else EXIT_NOT_OK)


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


def _send(
    url: urllib.parse.SplitResult,
    request: testing.MM7Request,
    user: str | None,
    password: str | None,
    timeout: float,
    progress: bool,
    insecure: bool = False,
) -> testing.MM7Reply:
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
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        conn.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in request.headers.items():
            if name.lower() not in _HOP_HEADERS:
                conn.putheader(name, value)
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
            conn.putheader("Authorization", f"Basic {token}")
        body = request.body
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if progress:
            with click.progressbar(length=len(body), label="Sending", file=sys.stderr) as bar:
                for start in range(0, len(body), CHUNK_SIZE):
                    chunk = body[start : start + CHUNK_SIZE]
                    conn.send(chunk)
                    bar.update(len(chunk))
        else:
            for start in range(0, len(body), CHUNK_SIZE):
                conn.send(body[start : start + CHUNK_SIZE])
        response = conn.getresponse()
        try:
            data = response.read()
        finally:
            response.close()
        return testing.parse_reply(response.status, dict(response.getheaders()), data)
    finally:
        conn.close()


def _describe(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


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
