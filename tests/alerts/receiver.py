"""A real HTTP receiver on 127.0.0.1 for the alert channels' tests: it records each POST and
answers from a script of status codes; given a secret, it verifies the Standard Webhooks
signature as a receiving tool would, and answers 401 to a call it cannot trust."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from notifwatch.ingest.providers import Rejected
from notifwatch.ingest.standard_webhooks import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: no secret to verify with

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    answers: list[int] = field(default_factory=lambda: [200])  # the last one repeats
    secret: str = ""
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                verified = None
                if receiver.secret:
                    try:
                        verify(receiver.secret, headers, body)
                        verified = True
                    except Rejected:
                        verified = False
                receiver.received.append(Received(self.path, headers, body, verified))
                time.sleep(receiver.delay)
                index = min(len(receiver.received), len(receiver.answers)) - 1
                status = 401 if verified is False else receiver.answers[index]
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-path"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
