"""The worker's side of ``app.py``: ``rq worker mm7`` imports this module and runs
:func:`process` for each queued message.

Here processing is writing one JSON line per message to ``QUEUE_PROCESSED`` (its TransactionID,
sender, subject and each attachment's type, size and SHA-256); put your own work in its place.
The spool directory is removed once the message was processed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from flask_mm7 import handoff

PROCESSED = os.environ.get("QUEUE_PROCESSED", "processed.jsonl")


def process(path: str) -> None:
    """Process the message saved at ``path``, then remove it."""
    with handoff.loaded(path) as msg:
        record = {
            "transaction_id": msg.transaction_id,
            "operation": msg.operation,
            "sender": str(getattr(msg, "sender", "") or ""),
            "subject": getattr(msg, "subject", None),
            "attachments": [
                [a.mimetype, a.size, hashlib.sha256(a.read()).hexdigest()]
                for a in getattr(msg, "attachments", [])
            ],
        }
    with open(PROCESSED, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    shutil.rmtree(path)
