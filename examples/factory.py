"""The application-factory pattern: ``mm7 = MM7()`` at module level, bound in ``create_app()``.

The handler is registered on the extension object, before any app exists, and runs inside the
app context of whichever app received the message, so ``current_app`` is that app. Run it with
``flask --app examples/factory.py run`` or ``python examples/factory.py`` (http://127.0.0.1:5000/mm7).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from flask_mm7 import MM7, DeliverRequest

mm7 = MM7()


@mm7.on_deliver
def receive(msg: DeliverRequest) -> None:
    """Log the message and keep its summary in the receiving app's config (for the demo only)."""
    current_app.logger.info(
        "MMS %s from %s to %s: %r, %d part(s)",
        msg.transaction_id,
        msg.sender,
        ", ".join(str(r) for r in msg.recipients),
        msg.text,
        len(msg.attachments),
    )
    current_app.config["RECEIVED"].append((msg.transaction_id, str(msg.sender), msg.text))
    # Returning None answers StatusCode 1000 (Success).


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["RECEIVED"] = []
    app.config.update(config or {})
    mm7.init_app(app)

    @app.get("/")
    def index() -> str:
        path = app.config.get("MM7_PATH", "/mm7")
        return f"{len(app.config['RECEIVED'])} MMS received; POST MM7 to {path}\n"

    return app


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    create_app().run(host="127.0.0.1", port=5000)
