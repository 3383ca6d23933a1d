"""Provider webhooks with valid credentials but bodies no provider should send.

Whatever the body, the answer is never a 5xx and the stored raw event never stays `received`:
it is recorded, ignored, or quarantined with a readable reason.
"""

import json
import random

import pytest

from notifwatch.ingest.models import Outcome, RawEvent
from tests.providers.test_email_webhooks import FIXTURES, last_raw, post, sources  # noqa: F401

pytestmark = pytest.mark.django_db

HOSTILE_VALUES = [
    1e308,
    10**30,
    -(10**30),
    -1,
    0,
    "99999-01-01T00:00:00Z",
    "\ud800",
    "q\u0000k",
    None,
    True,
    [],
    {},
    "x" * 20_000,
    [[[[[[]]]]]],
]


def mutate(value, rng: random.Random):
    """The sample with one field (at any depth) replaced by a hostile value."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        if rng.random() < 0.5:
            return {**value, key: rng.choice(HOSTILE_VALUES)}
        return {**value, key: mutate(value[key], rng)}
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return value[:index] + [mutate(value[index], rng)] + value[index + 1 :]
    return rng.choice(HOSTILE_VALUES)


def encode(body) -> bytes:
    # ensure_ascii keeps lone surrogates as JSON escapes, the way an attacker would send them.
    return json.dumps(body).encode()


@pytest.mark.parametrize("provider", ["sendgrid", "postmark"])
def test_mutated_samples_never_answer_5xx_nor_stay_received(client, sources, provider):  # noqa: F811
    samples = sorted((FIXTURES / provider).glob("[0-9]*.json"))
    rng = random.Random(provider)
    answers: dict[int, int] = {}
    for n in range(120):
        body = mutate(json.loads(rng.choice(samples).read_text()), rng)

        response = post(client, sources[provider], encode(body))

        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        assert response.status_code < 500, (n, body)
        raw = last_raw(sources[provider])
        assert raw.outcome != Outcome.RECEIVED, (n, body)
        if response.status_code >= 400:
            assert raw.outcome == Outcome.QUARANTINED and raw.reason, (n, body)
    assert not RawEvent.objects.filter(outcome=Outcome.RECEIVED).exists()
    # The loop really reached both sides: bodies recorded and bodies refused.
    assert answers.get(200) and any(code >= 400 for code in answers), answers


@pytest.mark.parametrize(
    "body, words",
    [
        ('[{"event": "delivered", "email": "a@b.co", "timestamp": 1e400}]', "out of range"),
        ('[{"event": "delivered", "email": "a@b.co", "timestamp": 1e20}]', "out of range"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ],
)
def test_sendgrid_bodies_out_of_every_range_are_quarantined(client, sources, body, words):  # noqa: F811
    response = post(client, sources["sendgrid"], body.encode())

    assert 400 <= response.status_code < 500
    raw = last_raw(sources["sendgrid"])
    assert raw.outcome == Outcome.QUARANTINED
    assert words in raw.reason
