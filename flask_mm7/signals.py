"""Signals the Flask extension sends, the way Flask sends its own (``flask.signals``, blinker).

Each is sent with the Flask app as sender, inside its app context::

    from flask_mm7.signals import message_received

    @message_received.connect_via(app)
    def count(app, message, **extra):
        ...

* :data:`message_received` (``message``): a request was read into a message; its handler is
  about to run.
* :data:`message_answered` (``message``, ``status_code``, ``status_text``): the relay is being
  answered with HTTP 200 and that MM7 status (the handler's answer, or a retry's recorded one).
* :data:`handler_failed` (``message``, ``exception``): the handler raised, or returned no
  status; the relay gets a retryable Fault. The exception is also sent through Flask's
  ``got_request_exception``, so error trackers (Sentry...) see it.

The plain :class:`~flask_mm7.MM7Middleware` sends none of them.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: a message was read; its handler is about to run
message_received = _signals.signal("mm7-message-received")
#: the relay is being answered with HTTP 200 (``status_code``, ``status_text``)
message_answered = _signals.signal("mm7-message-answered")
#: the handler raised or returned no status (``exception``)
handler_failed = _signals.signal("mm7-handler-failed")

__all__ = ["handler_failed", "message_answered", "message_received"]
