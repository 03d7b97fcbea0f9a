"""The inbox page in a real browser: headless Chromium, driven by selenium, over real HTTP.

The inbox runs in a Werkzeug server on 127.0.0.1 (port 0, in a thread); MMS are posted over
HTTP while the page is open, and the page must show them by itself (its JS poll): a PNG decoded
as a thumbnail that opens at full size, the text visible, and a labelled card instead of a
broken-image icon for what the browser cannot render (the seed example's ``<Binary contents>``
JPEG, an AMR clip). Screenshots are saved to ``test-output/inbox-empty.png``,
``test-output/inbox.png`` and ``test-output/inbox-full-size.png``.

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

    # The aggregator's own example (its image is the placeholder text "<Binary contents>") and
    # an AMR clip of junk bytes: neither can be rendered; each must become a labelled card.
    assert mm7_cli(["send", "--seed-example", server + "/mm7"]) == 0
    clip = tmp_path / "voice.amr"
    clip.write_bytes(b"#!AMR\n" + bytes(64))
    assert (
        mm7_cli(["send", server + "/mm7", "-a", f"{clip};type=audio/amr", "--text", "hör mal"]) == 0
    )

    # The photo is sent the way the empty page tells a developer to: with `mm7 send`.
    photo = tmp_path / "gradient.png"
    photo.write_bytes(tiny_png(640, 400))
    argv = ["send", server + "/mm7", "--attach", str(photo), "--text", "Grüße aus Chromium, café"]
    assert mm7_cli([*argv, "--subject", "Test photo", "--transaction-id", "4711"]) == 0
    assert "4711" in capsys.readouterr().out

    wait = WebDriverWait(browser, 15, poll_frequency=0.2)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages article")) == 4)
    articles = browser.find_elements(By.CSS_SELECTOR, "#messages article")
    newest, voice, seed, older = articles
    img = newest.find_element(By.CSS_SELECTOR, "img")
    wait.until(lambda d: d.execute_script("return arguments[0].complete", img))
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 640
    assert browser.execute_script("return arguments[0].naturalHeight", img) == 400
    assert img.is_displayed() and img.size["height"] <= 240  # a thumbnail
    assert not newest.find_element(By.CSS_SELECTOR, ".placeholder").is_displayed()

    text = newest.find_element(By.CSS_SELECTOR, ".text")
    assert text.is_displayed()
    assert text.text == "Grüße aus Chromium, café"
    assert newest.find_element(By.CSS_SELECTOR, ".subject").text == "Test photo"
    assert "An older message" in older.text
    assert not browser.find_element(By.ID, "empty").is_displayed()
    assert browser.find_element(By.ID, "total").text == "4"

    # What the browser cannot render is a labelled card (kind, name, type, size), not a
    # broken-image icon, and it downloads the file.
    for article, kind, name, mimetype in (
        (seed, "image", "image_0.jpg", "image/jpeg"),
        (voice, "audio", "voice.amr", "audio/amr"),
    ):
        card = wait.until(lambda d, a=article: a.find_element(By.CSS_SELECTOR, ".placeholder"))
        wait.until(lambda d, c=card: c.is_displayed())
        assert not article.find_element(By.CSS_SELECTOR, ".view").is_displayed()
        assert card.find_element(By.CSS_SELECTOR, ".kind").text.lower() == kind
        assert card.find_element(By.CSS_SELECTOR, ".name").text == name
        assert mimetype in card.text and "cannot show it" in card.text
        assert card.get_attribute("download") == name
        assert card.size["width"] >= 200 and card.size["height"] >= 100
    assert "12125550123" in seed.text  # the rest of the seed message shows as usual

    browser.set_window_size(1100, 1500)  # all four messages in the screenshot
    assert browser.save_screenshot(str(out / "inbox.png"))
    browser.set_window_size(1100, 900)

    # A thumbnail opens the picture at full size.
    page = browser.current_window_handle
    newest.find_element(By.CSS_SELECTOR, "a.view").click()
    wait.until(lambda d: len(d.window_handles) == 2)
    browser.switch_to.window(next(h for h in browser.window_handles if h != page))
    try:
        full = wait.until(lambda d: d.find_elements(By.TAG_NAME, "img"))[0]
        wait.until(lambda d: d.execute_script("return arguments[0].complete", full))
        assert browser.current_url.startswith(server + "/attachments/")
        assert browser.execute_script("return arguments[0].naturalWidth", full) == 640
        assert (full.size["width"], full.size["height"]) == (640, 400)
        blocked = [
            e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]
        ]
        assert blocked == []
        assert browser.save_screenshot(str(out / "inbox-full-size.png"))
    finally:
        browser.close()
        browser.switch_to.window(page)
