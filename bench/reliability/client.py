"""HTTP for the checks: requests signed the way each sender signs them, sent over keep-alive
connections to 127.0.0.1, from several processes at once.

Nothing here imports Django: client processes only speak HTTP, like real senders. Signatures
are computed here from the schemes' own definitions (Standard Webhooks, Mailgun, Twilio's
RequestValidator), not with the app's code, so a check also catches a verifier that drifted.
"""

import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from bench.reliability.server import Credentials, Endpoint

# In a Mailgun body, the signature block is written at send time (it must be fresh).
MAILGUN_SIGNATURE = b'"__MAILGUN_SIGNATURE__"'
# Stored with the raw event (the app keeps non-secret headers): ties a row to its request.
MARK_HEADER = "X-Reliability-Mark"
# gunicorn closes a keep-alive connection idle for 2 s: reconnect before that, not after.
IDLE_RECONNECT_SECONDS = 1.0


@dataclass
class Request:
    endpoint: str  # a key of Credentials.endpoints: "api", "sw", "sendgrid", ...
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # For Twilio: the parameters to sign when the body is not url-encoded (multipart).
    twilio_params: list[tuple[str, str]] | None = None
    mark: str = ""  # sent as X-Reliability-Mark
    sign: bool = True


@dataclass
class Answer:
    status: int  # 0 when there was no answer (see error)
    retry_after: str = ""
    body: bytes = b""
    error: str = ""
    sent_at: float = 0.0  # time.time() when sending started
    answered_at: float = 0.0


class MultiParams(dict):
    """Twilio's validator reads repeated form fields through getlist()."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        super().__init__()
        for name, value in pairs:
            self.setdefault(name, []).append(value)

    def getlist(self, name):
        return self[name]


def standard_webhooks_headers(secret: str, body: bytes) -> dict[str, str]:
    message_id = f"msg_{secrets.token_hex(12)}"
    timestamp = int(time.time())
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def mailgun_signature(key: str) -> bytes:
    """A fresh signature block (Mailgun signs timestamp + token with the signing key)."""
    timestamp = str(int(time.time()))
    token = secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"timestamp": timestamp, "token": token, "signature": signature}).encode()


def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(url, MultiParams(params))


def signed(request: Request, endpoint: Endpoint, base_url: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers as the sender would send them, signed now."""
    body = request.body
    headers = {"Content-Type": request.content_type, **request.headers}
    if request.mark:
        headers[MARK_HEADER] = request.mark
    if not request.sign:
        return body, headers
    if endpoint.auth == "bearer":
        headers["Authorization"] = f"Bearer {endpoint.secret}"
    elif endpoint.auth == "standard_webhooks":
        headers.update(standard_webhooks_headers(endpoint.secret, body))
    elif endpoint.auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(endpoint.secret.encode()).decode()
    elif endpoint.auth == "mailgun":
        body = body.replace(MAILGUN_SIGNATURE, mailgun_signature(endpoint.secret))
    elif endpoint.auth == "twilio":
        params = request.twilio_params
        if params is None:
            params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        headers["X-Twilio-Signature"] = twilio_signature(
            endpoint.secret, base_url + endpoint.path, params
        )
    return body, headers


class Sender:
    """One keep-alive connection to the app; reconnects after an error or a close."""

    def __init__(self, base_url: str, credentials: Credentials, timeout: float = 60):
        self.base_url = base_url
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.credentials = credentials
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def connect(self) -> http.client.HTTPConnection:
        if self.connection is None or time.monotonic() - self.last_used > IDLE_RECONNECT_SECONDS:
            self.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def send(self, request: Request) -> Answer:
        endpoint = self.credentials.endpoints[request.endpoint]
        body, headers = signed(request, endpoint, self.base_url)
        answer = Answer(status=0, sent_at=time.time())
        try:
            connection = self.connect()
            connection.request("POST", endpoint.path, body=body, headers=headers)
            response = connection.getresponse()
            answer.body = response.read()
            answer.status = response.status
            answer.retry_after = response.getheader("Retry-After") or ""
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as problem:
            answer.error = f"{type(problem).__name__}: {problem}"[:200]
            self.close()
        answer.answered_at = time.time()
        self.last_used = time.monotonic()
        return answer


def send_all(
    job: tuple[str, Credentials, list[Request], float],
) -> list[tuple[str, Answer]]:
    """Send requests in order over one connection until the deadline (time.time());
    returns (mark, answer) for each request sent. Runs in a client process."""
    base_url, credentials, requests, deadline = job
    sender = Sender(base_url, credentials)
    results = []
    for request in requests:
        if time.time() > deadline:
            break
        answer = sender.send(request)
        answer.body = answer.body[:2000]  # enough to read an error; keeps the pipe small
        results.append((request.mark, answer))
    sender.close()
    return results


def send_in_parallel(
    base_url: str,
    credentials: Credentials,
    batches: list[list[Request]],
    deadline: float,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[str, Answer]]:
    """One client process per batch, all at once; every (mark, answer) back."""
    context = multiprocessing.get_context("spawn")
    results: list[tuple[str, Answer]] = []
    with context.Pool(len(batches)) as pool:
        jobs = [(base_url, credentials, batch, deadline) for batch in batches]
        for part in pool.imap_unordered(send_all, jobs):
            results.extend(part)
            if progress:
                progress(len(results))
    return results
