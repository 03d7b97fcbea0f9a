"""The inbox page in a real browser: headless Chromium, driven by selenium, over real HTTP.

The inbox runs in a Werkzeug server on 127.0.0.1 (port 0, in a thread); an MMS with a PNG is
posted over HTTP while the page is open, and the page must show it by itself (its JS poll), with
the image decoded (``naturalWidth > 0``) and the text visible. Screenshots are saved to
``test-output/inbox-empty.png`` and ``test-output/inbox.png``.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian's ``chromium`` and
``chromium-driver``; ``.ci/system-deps`` installs them) and selenium (the ``test`` extra).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _examples_support import ROOT, load_example, tiny_png
from werkzeug.serving import make_server

from flask_mm7.cli import main as mm7_cli
from flask_mm7.testing import MM7Reply, MM7Request, build_deliver, parse_reply

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
)

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The inbox app served over HTTP on 127.0.0.1; yields its base URL."""
    app = load_example("inbox/app.py").create_app(
        {"INBOX_DIR": str(tmp_path / "inbox"), "INBOX_POLL_SECONDS": 0.3}
    )
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="inbox-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="inbox-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def post_http(url: str, request: MM7Request) -> MM7Reply:
    """POST over real HTTP, as a relay does."""
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    http_request = urllib.request.Request(url, data=request.body, headers=headers, method="POST")
    with urllib.request.urlopen(http_request, timeout=10) as response:
        return parse_reply(response.status, response.headers.items(), response.read())


def test_inbox_in_chromium(
    server: str, browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    browser.get(server + "/")
    empty = browser.find_element(By.ID, "empty")
    assert empty.is_displayed()
    assert f"mm7 send {server}/mm7 --attach photo.jpg --text hi" in empty.text
    assert browser.save_screenshot(str(out / "inbox-empty.png"))

    # An earlier message is on the page already; the new one must arrive by the page's poll.
    older = build_deliver(text="An older message, text only", sender="447700900765")
    reply = post_http(server + "/mm7", older)
    assert reply.ok, reply.summary
    assert reply.transaction_id == older.transaction_id
    browser.refresh()

    # The photo is sent the way the empty page tells a developer to: with `mm7 send`.
    photo = tmp_path / "gradient.png"
    photo.write_bytes(tiny_png(240, 160))
    argv = ["send", server + "/mm7", "--attach", str(photo), "--text", "Grüße aus Chromium, café"]
    assert mm7_cli([*argv, "--subject", "Test photo", "--transaction-id", "4711"]) == 0
    assert "4711" in capsys.readouterr().out

    wait = WebDriverWait(browser, 15, poll_frequency=0.2)
    img = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#messages article img"))[0]
    wait.until(lambda d: d.execute_script("return arguments[0].complete", img))
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 240
    assert browser.execute_script("return arguments[0].naturalHeight", img) == 160

    articles = browser.find_elements(By.CSS_SELECTOR, "#messages article")
    assert len(articles) == 2
    newest = articles[0]
    text = newest.find_element(By.CSS_SELECTOR, ".text")
    assert text.is_displayed()
    assert text.text == "Grüße aus Chromium, café"
    assert newest.find_element(By.CSS_SELECTOR, ".subject").text == "Test photo"
    assert "An older message" in articles[1].text
    assert not browser.find_element(By.ID, "empty").is_displayed()
    assert browser.find_element(By.ID, "total").text == "2"

    assert browser.save_screenshot(str(out / "inbox.png"))
