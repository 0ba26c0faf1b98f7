"""A real HTTP server on 127.0.0.1 that speaks just enough of the OpenAI chat-completions API for tests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]


class FakeChatServer:
    """Serves ``POST /v1/chat/completions`` in a thread; records every request (path, headers, JSON body).

    ``mode``: ``ok`` (``n`` choices from ``reply(body)``), ``error`` (HTTP 500) or ``garbage`` (200, not JSON).
    ``max_choices`` caps the choices per answer, like servers that ignore ``n``.
    """

    def __init__(self, reply: Reply | str = "42", mode: str = "ok", max_choices: int | None = None) -> None:
        self.reply = reply if callable(reply) else (lambda body, text=reply: text)
        self.mode, self.max_choices = mode, max_choices
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if server.mode == "error":
                    self._send(500, b'{"error": "internal"}')
                elif server.mode == "garbage":
                    self._send(200, b"<html>this is not json</html>")
                else:
                    n = int(body.get("n", 1))
                    n = min(n, server.max_choices) if server.max_choices else n
                    choices = [{"index": i, "message": {"role": "assistant", "content": server.reply(body)},
                                "finish_reason": "stop"} for i in range(n)]
                    self._send(200, json.dumps({"id": "x", "object": "chat.completion", "choices": choices}).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def closed_port_url() -> str:
    """A base URL on a local port that nothing listens on (connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
