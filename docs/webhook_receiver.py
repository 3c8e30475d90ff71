"""A receiver of ratchet's webhook messages that checks they come from ratchet (standard library only).

Every message carries ``X-Ratchet-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the body's
exact bytes keyed by the secret in the Prefect Secret block ``notify.secret_block`` (default
``ratchet-notify-secret``; read it with
``python -c "from prefect.blocks.system import Secret; print(Secret.load('ratchet-notify-secret').get())"``).
Compute the same over the raw body, before parsing it, and compare in constant time; answer 401
and drop the message when they differ. The body's ``occurred`` says when the event happened, for
a receiver that also refuses old messages (replays).

    RATCHET_WEBHOOK_SECRET=... python docs/webhook_receiver.py 8000
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_HEADER = "X-Ratchet-Signature-256"


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    """True when ``signature`` is ratchet's for ``body`` under ``secret``."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return signature is not None and hmac.compare_digest(signature.encode(), expected.encode())


def make_server(port: int, secret: str, handle=print, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server that calls ``handle(message)`` for each message whose signature holds."""

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not verify(body, self.headers.get(SIGNATURE_HEADER), secret):
                self.send_response(401)  # not from ratchet, or changed on the way
                self.end_headers()
                return
            handle(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Receiver)


if __name__ == "__main__":
    make_server(int(sys.argv[1]), os.environ["RATCHET_WEBHOOK_SECRET"]).serve_forever()
