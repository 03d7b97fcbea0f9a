"""``MM7``: the Flask extension that installs :class:`~flask_mm7.MM7Middleware` on an app.

.. code-block:: python

    from flask import Flask
    from flask_mm7 import MM7

    app = Flask(__name__)
    mm7 = MM7(app)            # or mm7 = MM7(); mm7.init_app(app) in an app factory

    @mm7.on_deliver
    def receive(msg):
        ...

The middleware sits in front of Flask (``app.wsgi_app``), so aggregator POSTs never meet CSRF
protection, login hooks or HTML error pages; handlers run inside ``app.app_context()``, so
``current_app``, ``g`` and Flask-SQLAlchemy work. The only module that imports Flask.
"""

from __future__ import annotations

import dataclasses
import typing as t

from flask import Flask, got_request_exception

from . import cli, signals
from ._config import Settings
from ._middleware import MM7Middleware
from ._outcome import Outcome
from ._receiver import Handler, HandlerRegistry, HandlerResult

if t.TYPE_CHECKING:  # pragma: no cover
    from ._messages import Message


class FlaskMM7Middleware(MM7Middleware):
    """The middleware for one Flask app: each handler call runs in that app's context, and
    the signals of :mod:`flask_mm7.signals` are sent with the app as sender."""

    def __init__(self, flask_app: Flask, **kwargs: t.Any) -> None:
        super().__init__(flask_app.wsgi_app, **kwargs)
        self.flask_app = flask_app

    def call_handler(self, handler: Handler, message: Message) -> HandlerResult:
        with self.flask_app.app_context():
            signals.message_received.send(self.flask_app, message=message)
            return handler(message)

    def handler_failed(self, message: Message, exception: Exception) -> None:
        with self.flask_app.app_context():
            signals.handler_failed.send(self.flask_app, message=message, exception=exception)
            got_request_exception.send(self.flask_app, exception=exception)

    def answered(self, message: Message, outcome: Outcome) -> None:
        if not signals.message_answered.receivers:
            return  # no app context to push for nobody
        with self.flask_app.app_context():
            signals.message_answered.send(
                self.flask_app,
                message=message,
                status_code=outcome.status_code,
                status_text=outcome.status_text,
            )


@dataclasses.dataclass(frozen=True)
class MM7State:
    """What one app's receiver is: ``app.extensions["mm7"]``."""

    #: the extension the app was set up with (one may serve several apps)
    extension: MM7
    #: the WSGI middleware installed as ``app.wsgi_app``
    middleware: FlaskMM7Middleware

    @property
    def settings(self) -> Settings:
        """The settings the app's receiver runs with."""
        return self.middleware.settings


class MM7(HandlerRegistry):
    """Receive MM7 requests in a Flask app.

    Handlers may be registered before or after :meth:`init_app`; one extension may serve
    several apps. Settings come from ``MM7_*`` config keys (see :meth:`init_app`), then from
    keyword arguments given here, which win.

    :param app: the app to set up now, or None to call :meth:`init_app` later.
    :param options: :class:`~flask_mm7._config.Settings` fields, e.g. ``path="/inbound/mms"``.
    """

    def __init__(self, app: Flask | None = None, **options: t.Any) -> None:
        super().__init__()
        Settings.from_mapping({}, **options)  # fail now on an unknown or invalid option
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install the receiver on ``app``.

        Reads the ``MM7_*`` config keys once; README's Configuration table lists them with
        their defaults and meanings. Strings are accepted for every key, so values can come
        straight from environment variables; a bad value raises ValueError naming its key, and
        an unknown ``MM7_*`` key is logged as a warning naming the closest known one.

        Behind a reverse proxy, wrap ProxyFix *after* this call so it sits outside the
        receiver: ``app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)``.

        :raises RuntimeError: when ``app`` already has an MM7 extension.
        """
        if "mm7" in app.extensions:
            raise RuntimeError(
                "flask_mm7 is already installed on this app: call MM7(app) or init_app(app)"
                " once per app"
            )
        for key, value in Settings.config_defaults().items():
            app.config.setdefault(key, value)
        settings = Settings.from_mapping(app.config, **self._options)
        middleware = FlaskMM7Middleware(app, settings=settings, handlers=self.handlers)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions["mm7"] = MM7State(self, middleware)
        app.cli.add_command(cli.mm7)

    @staticmethod
    def settings_for(app: Flask) -> Settings:
        """The settings the receiver of ``app`` runs with."""
        state: MM7State = app.extensions["mm7"]
        return state.settings
