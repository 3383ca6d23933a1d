"""Each channel for real: Django's test mail outbox, and a receiver on 127.0.0.1 for the chat
and the signed outgoing webhook."""

import pytest
from django.core import mail

from notifwatch.alerts.actions import generate_secret
from notifwatch.alerts.channels import SendFailed, send_alert
from notifwatch.alerts.models import AlertKind, Channel, Subscription
from notifwatch.alerts.recording import Message, record_alert

pytestmark = pytest.mark.django_db

MESSAGE = Message(
    subject="Order confirmations bounce at Postmark",
    body="12 customers were not reached: the sending domain is not verified.\nOwner: CRM admins.",
    link="/exceptions/7/",
    payload={"exception": 7, "customers_not_reached": 12},
)


def alert_for(user, channel, target="", secret="", **message):
    subscription = Subscription.objects.create(
        user=user, kind=AlertKind.ASSIGNED, channel=channel, target=target, secret=secret
    )
    (alert,) = record_alert(
        AlertKind.ASSIGNED,
        "group:7:history:1",
        Message(**{**MESSAGE.__dict__, **message}),
        subscriptions=Subscription.objects.filter(pk=subscription.pk),
    )
    return alert


def test_it_emails_plain_text_and_html_from_the_alert_address(reviewer, settings):
    settings.NOTIFWATCH_ALERT_FROM = "alerts@notifwatch.example"
    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example"
    reviewer.email = "rita@example.com"
    reviewer.save()

    send_alert(alert_for(reviewer, Channel.EMAIL))

    (sent,) = mail.outbox
    assert sent.to == ["rita@example.com"] and sent.from_email == "alerts@notifwatch.example"
    assert sent.subject == "Order confirmations bounce at Postmark"
    assert "12 customers were not reached" in sent.body
    assert "https://notifwatch.example/exceptions/7/" in sent.body
    html, mimetype = sent.alternatives[0]
    assert mimetype == "text/html"
    assert '<a href="https://notifwatch.example/exceptions/7/">' in html
    assert "Owner: CRM admins." in html


def test_it_emails_the_address_given_instead_of_the_users_own(reviewer):
    reviewer.email = "rita@example.com"
    reviewer.save()

    send_alert(alert_for(reviewer, Channel.EMAIL, target="oncall@example.com"))

    assert mail.outbox[0].to == ["oncall@example.com"]


def test_it_fails_readably_without_any_email_address(reviewer):
    with pytest.raises(SendFailed, match="no email address"):
        send_alert(alert_for(reviewer, Channel.EMAIL))
    assert mail.outbox == []


def test_it_posts_slack_compatible_json_to_a_chat_webhook(reviewer, receiver, settings):
    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example"
    chat = receiver()

    send_alert(alert_for(reviewer, Channel.CHAT, target=chat.url))

    (call,) = chat.received
    assert call.path == "/hook/secret-path"
    assert call.headers["content-type"] == "application/json"
    assert call.json == {
        "text": "*Order confirmations bounce at Postmark*\n"
        "12 customers were not reached: the sending domain is not verified.\n"
        "Owner: CRM admins.\n"
        "https://notifwatch.example/exceptions/7/"
    }


def test_it_signs_the_outgoing_webhook_so_the_receiver_can_verify_it(reviewer, receiver):
    secret = generate_secret()
    tool = receiver(secret=secret)
    alert = alert_for(reviewer, Channel.WEBHOOK, target=tool.url, secret=secret)

    send_alert(alert)

    (call,) = tool.received
    assert call.verified is True
    assert call.headers["webhook-id"] == alert.key
    body = call.json
    assert body["key"] == alert.key and body["kind"] == "assigned"
    assert body["subject"] == MESSAGE.subject and body["payload"] == MESSAGE.payload
    assert body["created_at"] == alert.created_at.isoformat()


def test_a_receiver_with_another_secret_refuses_it_and_the_send_fails(reviewer, receiver):
    tool = receiver(secret=generate_secret())
    alert = alert_for(reviewer, Channel.WEBHOOK, target=tool.url, secret=generate_secret())

    with pytest.raises(SendFailed, match=r"webhook to http://127\.0\.0\.1:\d+/… answered 401"):
        send_alert(alert)
    assert tool.received[0].verified is False


@pytest.mark.parametrize(
    ("status", "words"),
    [(500, "answered 500"), (302, "answered 302 \\(redirects are not followed\\)")],
)
def test_anything_but_a_2xx_is_a_failure_that_hides_the_urls_path(
    reviewer, receiver, status, words
):
    chat = receiver(answers=[status])

    with pytest.raises(SendFailed, match=words) as failed:
        send_alert(alert_for(reviewer, Channel.CHAT, target=chat.url))
    assert "secret-path" not in str(failed.value)
    assert len(chat.received) == 1  # the redirect was not followed


def test_a_receiver_that_is_not_there_is_a_failure(reviewer, receiver):
    gone = receiver()
    url = gone.url
    gone.close()

    with pytest.raises(SendFailed, match="could not connect"):
        send_alert(alert_for(reviewer, Channel.CHAT, target=url))


def test_a_message_that_already_ends_with_its_link_does_not_say_it_twice(
    reviewer, receiver, settings
):
    settings.NOTIFWATCH_BASE_URL = "https://notifwatch.example"
    chat = receiver()
    alert = alert_for(reviewer, Channel.CHAT, target=chat.url)
    alert.body += "\nOpen it: https://notifwatch.example/exceptions/7/"

    send_alert(alert)

    (call,) = chat.received
    assert call.json["text"].count("https://notifwatch.example/exceptions/7/") == 1
