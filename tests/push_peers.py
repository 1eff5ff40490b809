"""Real HTTP peers on 127.0.0.1 for the push tests: a push service, FCM and its token endpoint.

``StubServer`` records every request (method, path, headers, body) and answers each from
a queue of scripted replies, or a default. A reply of ``HOLD`` answers nothing until the
test ends: the client's read timeout is what the test observes. ``Browser`` is the other
end of a Web Push subscription: it holds the private key and decrypts what arrived.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from requests.structures import CaseInsensitiveDict


@dataclass
class Recorded:
    method: str
    path: str
    headers: CaseInsensitiveDict  # as sent, looked up in any case
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict = b""


HOLD = Reply(status=0)  # never answer (until the server stops)
Responder = Callable[[Recorded], Reply]


class StubServer:
    def __init__(self, default: Reply | Responder | None = None):
        self.requests: list[Recorded] = []
        self.replies: dict[str, list[Reply]] = {}  # path -> scripted replies, in order
        self.routes: dict[str, Reply | Responder] = {}  # path -> reply when none is scripted
        self.default = default or Reply()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, path: str, *replies: Reply) -> None:
        self.replies.setdefault(path, []).extend(replies)

    def to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _reply_for(self, recorded: Recorded) -> Reply:
        scripted = self.replies.get(recorded.path)
        if scripted:
            return scripted.pop(0)
        reply = self.routes.get(recorded.path, self.default)
        return reply(recorded) if callable(reply) else reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded("POST", self.path, CaseInsensitiveDict(self.headers.items()), self.rfile.read(length))
                stub.requests.append(recorded)
                reply = stub._reply_for(recorded)
                if reply is HOLD:
                    stub.release.wait(timeout=30)
                    return
                body = reply.body
                if isinstance(body, dict):
                    body = json.dumps(body)
                body = body.encode() if isinstance(body, str) else body
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    host, port = server.server_address[:2]
    server.server_close()
    return f"http://{host}:{port}"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A browser's push subscription: its key pair and auth secret, as the test keeps them."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        point = self.private_key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.keys = {"p256dh": b64url(point), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"))
