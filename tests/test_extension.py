"""The Flask extension: init_app, config, app context, several apps, misuse."""

from __future__ import annotations

import pytest
from flask import Flask, current_app, g
from helpers import mm7_body, parse_reply

from flask_mm7 import MM7, MM7Middleware
from flask_mm7._config import Settings


def _post(app: Flask, path: str = "/mm7"):  # type: ignore[no-untyped-def]
    body, content_type = mm7_body()
    return app.test_client().post(path, data=body, headers={"Content-Type": content_type})


def test_app_factory_with_handlers_registered_before_and_after_init_app() -> None:
    mm7 = MM7()
    seen: list[str] = []

    @mm7.on_deliver
    def deliver(msg):  # type: ignore[no-untyped-def]
        g.marker = "in-context"
        seen.append(f"{current_app.name}:{msg.transaction_id}:{g.marker}")

    def create_app(name: str) -> Flask:
        app = Flask(name)
        app.config["MM7_PATH"] = f"/{name}/mm7"
        mm7.init_app(app)
        return app

    first, second = create_app("one"), create_app("two")

    @mm7.on_read_reply
    def read_reply(msg):  # type: ignore[no-untyped-def]
        return None

    assert _post(first, "/one/mm7").status_code == 200
    assert _post(second, "/two/mm7").status_code == 200
    assert _post(first, "/two/mm7").status_code == 404  # each app has its own path
    assert seen == ["one:TID-1:in-context", "two:TID-1:in-context"]
    assert first.extensions["mm7"].extension is mm7 and second.extensions["mm7"].extension is mm7
    assert mm7.handlers["ReadReplyReq"] is read_reply
    assert deliver.__name__ == "deliver"  # decorators return the function unchanged


def test_config_defaults_are_visible_and_overrides_win() -> None:
    app = Flask(__name__)
    app.config["MM7_MAX_PARTS"] = "12"  # strings from the environment are accepted
    mm7 = MM7(app, max_depth=3)
    settings = MM7.settings_for(app)
    assert (settings.path, settings.max_parts, settings.max_depth) == ("/mm7", 12, 3)
    assert app.config["MM7_SPOOL_THRESHOLD"] == Settings().spool_threshold
    assert app.config["MM7_PATH"] == "/mm7"
    assert isinstance(app.extensions["mm7"].middleware, MM7Middleware)
    assert mm7.handlers == {}


def test_init_app_twice_is_an_error_with_a_remedy() -> None:
    app = Flask(__name__)
    MM7(app)
    with pytest.raises(RuntimeError, match="once per app"):
        MM7(app)


def test_unknown_or_invalid_option_fails_at_setup() -> None:
    with pytest.raises(TypeError, match="max_part"):
        MM7(max_part=3)
    with pytest.raises(ValueError, match="max_parts"):
        MM7(max_parts=0)
    app = Flask(__name__)
    app.config["MM7_PATH"] = "mm7"
    with pytest.raises(ValueError, match="path"):
        MM7(app)


def test_second_handler_for_an_operation_is_refused() -> None:
    mm7 = MM7()
    mm7.on_deliver(lambda msg: None)
    with pytest.raises(RuntimeError, match="already registered"):
        mm7.on_deliver(lambda msg: None)


def test_flask_routes_still_work_and_errors_stay_soap() -> None:
    app = Flask(__name__)
    mm7 = MM7(app)

    @app.route("/")
    def index() -> str:
        return "home"

    @mm7.on_deliver
    def deliver(msg):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    client = app.test_client()
    assert client.get("/").data == b"home"
    response = _post(app)
    assert response.status_code == 500
    assert response.mimetype == "text/xml"
    assert parse_reply(response.data)["StatusCode"] == "3000"


def test_cli_group_is_registered() -> None:
    app = Flask(__name__)
    MM7(app)
    assert "mm7" in app.cli.commands
