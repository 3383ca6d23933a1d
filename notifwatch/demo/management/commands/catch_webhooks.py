import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.core.management.base import BaseCommand

SHOWN_HEADERS = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")


class Command(BaseCommand):
    help = (
        "For the demo: listen on 127.0.0.1 and print every POST received (the chat and outgoing "
        "webhook alerts), answering 200."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8025)

    def handle(self, port, **options):
        out = self.stdout

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
                except ValueError:
                    shown = body.decode("utf-8", "replace")
                headers = "".join(
                    f"  {name}: {self.headers[name]}\n"
                    for name in SHOWN_HEADERS
                    if self.headers[name]
                )
                out.write(f"── POST {self.path}\n{headers}{shown}\n")
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format, *args):
                pass  # the POST itself is printed above; no access-log line beside it

        # Localhost only: it prints whatever it is sent.
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        out.write(f"Catching webhooks on http://127.0.0.1:{port}/ (Ctrl+C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
