"""Sending one alert by its subscription's channel: email, a chat webhook, a signed webhook.

Each sender raises `SendFailed` with a sentence a person can read ("chat webhook to
https://chat.example.com/… answered 500"); anything else it raises is a bug, not a failed send.
URLs are shown by scheme and host only: a chat webhook's path is its secret.
"""

import json
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils.html import escape, linebreaks

from notifwatch.alerts.models import Alert, Channel, Subscription
from notifwatch.ingest.standard_webhooks import sign

# Long enough for a slow receiver, short enough that one dead receiver cannot hold the worker.
TIMEOUT_SECONDS = 10
# last_error is read on a page: a receiver's whole error page is not.
ERROR_CHARS = 300


class SendFailed(Exception):
    """The channel did not take the alert; the message says why, in plain words."""


def send_alert(alert: Alert) -> None:
    """Send `alert` by its subscription's channel; raise SendFailed when it did not go."""
    subscription = alert.subscription
    if subscription.channel == Channel.EMAIL:
        send_email(alert, email_address(subscription))
    elif subscription.channel == Channel.CHAT:
        post(subscription.target, chat_json(alert), {}, what="chat webhook")
    elif subscription.channel == Channel.WEBHOOK:
        body = webhook_json(alert)
        post(subscription.target, body, webhook_headers(alert, body), what="webhook")
    else:
        raise SendFailed(f"unknown channel {subscription.channel!r}")


def email_address(subscription: Subscription) -> str:
    """The subscription's address; a user's blank target is that user's own address."""
    if subscription.target:
        return subscription.target
    if subscription.user is not None and subscription.user.email:
        return subscription.user.email
    who = subscription.user or subscription.team
    raise SendFailed(f"no email address: {who} has none, and the subscription names none")


def absolute_link(link: str) -> str:
    return settings.NOTIFWATCH_BASE_URL + link if link.startswith("/") else link


def with_link(body: str, link: str, separator: str = "\n\n") -> str:
    """The body, ending with the link unless the message already says it."""
    return body + (f"{separator}{link}" if link and link not in body else "")


def send_email(alert: Alert, address: str) -> None:
    link = absolute_link(alert.link)
    text = with_link(alert.body, link)
    html = linebreaks(alert.body) + (
        f'<p><a href="{escape(link)}">Open in notifwatch</a></p>' if link else ""
    )
    message = EmailMultiAlternatives(
        subject=alert.subject,
        body=text,
        from_email=settings.NOTIFWATCH_ALERT_FROM,
        to=[address],
        connection=get_connection(timeout=TIMEOUT_SECONDS),
    )
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception as exc:  # smtplib, socket and SSL errors share no base class worth naming
        raise SendFailed(f"email to {address} failed: {error_words(exc)}") from exc


def chat_json(alert: Alert) -> bytes:
    """Slack-compatible incoming-webhook JSON: the subject in bold, the body, the link."""
    text = with_link(f"*{alert.subject}*\n{alert.body}", absolute_link(alert.link), "\n")
    return json.dumps({"text": text}).encode()


def webhook_json(alert: Alert) -> bytes:
    return json.dumps(
        {
            "type": "notifwatch.alert",
            "key": alert.key,
            "kind": alert.kind,
            "subject": alert.subject,
            "body": alert.body,
            "link": absolute_link(alert.link),
            "payload": alert.payload,
            "created_at": alert.created_at.isoformat(),
        }
    ).encode()


def webhook_id(alert: Alert) -> str:
    # The same id on every retry lets the receiver drop a repeat; a header must be ASCII.
    return alert.key if alert.key.isascii() and alert.key.isprintable() else f"alert-{alert.pk}"


def webhook_headers(alert: Alert, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, signed with the subscription's whsec_ secret."""
    secret = alert.subscription.secret
    if not secret:
        raise SendFailed("the webhook has no signing secret: set one on the subscriptions page")
    message_id, timestamp = webhook_id(alert), int(time.time())
    try:
        signature = sign(secret, message_id, timestamp, body)
    except ValueError as exc:
        raise SendFailed(f"the webhook's secret is unusable: {exc}") from exc
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def post(url: str, body: bytes, headers: dict[str, str], *, what: str) -> None:
    """POST JSON to `url`; any answer but a 2xx, or no answer, is a failure."""
    where = f"{what} to {url_words(url)}"
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=TIMEOUT_SECONDS,
            # A redirect could lead anywhere, and most receivers answer a POST with none.
            allow_redirects=False,
        )
    except requests.Timeout as exc:
        raise SendFailed(f"{where} did not answer within {TIMEOUT_SECONDS} s") from exc
    except requests.ConnectionError as exc:
        raise SendFailed(f"{where}: could not connect") from exc
    except requests.RequestException as exc:
        raise SendFailed(f"{where} failed: {error_words(exc)}") from exc
    if not 200 <= response.status_code < 300:
        moved = " (redirects are not followed)" if response.is_redirect else ""
        raise SendFailed(f"{where} answered {response.status_code}{moved}")


def url_words(url: str) -> str:
    """Scheme and host only: a chat webhook's path is the secret that lets anyone post."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    if not parts.scheme or not parts.hostname:
        return "an address that is not a URL"
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{port}{tail}"


def error_words(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:ERROR_CHARS]
