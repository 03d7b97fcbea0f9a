"""The smallest MM7 receiver: a Flask app that prints every MMS it is sent.

Run it with ``python examples/minimal.py``; it listens on http://127.0.0.1:5000/mm7. Send it a
test message with ``mm7 send http://127.0.0.1:5000/mm7 --attach photo.jpg --text hi``.
"""

from __future__ import annotations

from flask import Flask

from flask_mm7 import MM7, DeliverRequest

app = Flask(__name__)
mm7 = MM7(app)  # the MM7 endpoint is MM7_PATH, "/mm7" by default


@mm7.on_deliver
def receive(msg: DeliverRequest) -> tuple[int, str]:
    print(f"MMS {msg.transaction_id} from {msg.sender}: {msg.subject or ''} {msg.text or ''}")
    for part in msg.attachments:
        print(f"  {part.mimetype} {part.safe_filename} ({part.size} bytes)")
    return 1000, "Successfully received MMS"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
