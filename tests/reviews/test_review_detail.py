from html import unescape

import pytest
from django.urls import reverse

from notifwatch.deliveries.models import Notification
from notifwatch.failures.models import Review
from notifwatch.failures.reasons import reason_by_key
from notifwatch.failures.reviews import decide, finish_review, start_review
from tests.exceptions.data import event, record_failures, send
from tests.reviews.data import ago


@pytest.fixture
def review(reviewer, week):
    review, _ = start_review(reviewer)
    return review


def url(review: Review, item=None) -> str:
    base = reverse("review_detail", args=[review.pk])
    return f"{base}?item={item.pk}" if item else base


def page(client, address: str, **headers) -> str:
    response = client.get(address, **headers)
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_it_opens_on_the_first_undecided_item(client, reviewer, review, teams):
    first, second = review.items.order_by("position")[:2]
    decide(first, "assign", team=teams["Billing"], actor=reviewer)
    client.force_login(reviewer)

    content = page(client, url(review))

    assert "Item 2 of 5" in content
    assert f'<h2 id="item-title" tabindex="-1"><a href="/exceptions/{second.group_id}/">' in content
    assert "1 decided, 4 to go" in content


def test_it_explains_the_current_item(client, reviewer, review, week):
    item = review.items.get(group=week.new)
    reason = reason_by_key(week.new.reason_key)
    client.force_login(reviewer)

    content = page(client, url(review, item))

    assert "Item 3 of 5" in content
    assert f"#{week.new.pk} {week.new.title}" in content
    assert "New in the last 7 days." in content
    # The readable reason, then what to do about it, who can fix it and the impact.
    assert content.index(reason.sentence) < content.index(reason.action)
    assert "Who can fix it</dt><dd>Whoever keeps the customer's contact details" in content
    assert '<div class="stat-n">3</div><div class="stat-l">customers not reached' in content
    assert '<div class="stat-n">3</div><div class="stat-l">occurrences' in content
    assert '<span class="badge unowned">Unowned</span>' in content
    assert "Billing sender · Email · Order confirmation" in content


def test_it_shows_the_owner(client, reviewer, review, week):
    client.force_login(reviewer)
    content = page(client, url(review, review.items.get(group=week.grown)))
    assert "Owner</dt><dd>Billing (team)</dd>" in content
    assert "Grew from 4 to 6 occurrences (+50%) in the last 7 days." in content


def test_it_links_the_previous_and_next_items(client, reviewer, review):
    first, second, third = review.items.order_by("position")[:3]
    client.force_login(reviewer)

    content = page(client, url(review, second))

    assert f'id="review-prev" rel="prev" href="{url(review, first)}"' in content
    assert f'id="review-next" rel="next" href="{url(review, third)}"' in content
    assert f'hx-get="{url(review, third)}"' in content


def test_it_offers_every_decision_with_its_shortcut(client, reviewer, review):
    client.force_login(reviewer)

    content = page(client, url(review))

    for key, label in [
        ("a", "Assign"),
        ("x", "Accept as expected"),
        ("s", "Snooze until…"),
        ("f", "Fix requested"),
        ("e", "Escalate"),
    ]:
        assert f'<summary aria-keyshortcuts="{key}"><kbd>{key}</kbd> {label}</summary>' in content
    assert "Keyboard: <kbd>a</kbd> assign" in content
    assert "<kbd>j</kbd> or <kbd>→</kbd> next" in content
    assert content.count('method="post" action="/reviews/') == 6  # five decisions and finish
    assert "/static/review.js" in content


def test_the_clock_counts_from_the_start(client, reviewer, review):
    Review.objects.filter(pk=review.pk).update(started_at=ago(minutes=4, hours=0))
    client.force_login(reviewer)

    content = page(client, url(review))

    assert 'class="review-clock"' in content
    assert 'data-elapsed="24' in content  # 240 seconds and a few
    assert (
        '<span class="clock-time" role="timer" aria-label="Time since the review started">4:0'
        in content
    )
    assert '<p class="clock-note" hidden>' in content


def test_the_clock_warns_calmly_past_fifteen_minutes(client, reviewer, review):
    Review.objects.filter(pk=review.pk).update(started_at=ago(minutes=17))
    client.force_login(reviewer)

    content = page(client, url(review))

    assert 'class="review-clock over"' in content
    assert ">17:0" in content
    assert '<p class="clock-note" >Past 15 minutes. No rush: what is left carries over' in content


def test_htmx_gets_only_the_item_fragment(client, reviewer, review):
    second = review.items.get(position=2)
    client.force_login(reviewer)

    content = page(client, url(review, second), HTTP_HX_REQUEST="true")

    assert content.startswith('\n<div id="review-item"') or content.startswith(
        '<div id="review-item"'
    )
    assert "<html" not in content
    assert "Item 2 of 5" in content
    assert 'id="undecided-count" hx-swap-oob="true"' in content


def test_htmx_history_restore_gets_the_whole_page(client, reviewer, review):
    client.force_login(reviewer)
    content = page(
        client, url(review), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in content


def test_it_shows_the_decision_already_taken(client, reviewer, review, teams):
    first = review.items.get(position=1)
    decide(first, "escalate", team=teams["Platform"], note="Second time this month", actor=reviewer)
    client.force_login(reviewer)

    content = page(client, url(review, first))

    assert "<strong>Decided:</strong> Escalated to Platform (team), by rita at" in content
    assert "“Second time this month”" in content
    assert "Change the decision" in content


def test_it_says_when_everything_is_decided(client, reviewer, review):
    for item in review.items.all():
        decide(item, "accept", actor=reviewer)
    client.force_login(reviewer)

    content = page(client, url(review))

    assert "All 5 items decided" in content
    assert "Every item has a decision." in content


def test_a_finished_review_shows_its_minutes(client, reviewer, review):
    finish_review(review, actor=reviewer)
    client.force_login(reviewer)
    response = client.get(url(review))
    assert response.status_code == 302
    assert response["Location"] == reverse("review_minutes", args=[review.pk])


def test_readers_see_masked_titles(client, viewer, reviewer, json_source):
    from notifwatch.failures.grouping import Problem, record_problems

    record_problems(
        [
            Problem(
                kind="identity",
                fingerprint="shared|chloe",
                title="chloe.martin@example.com is used by 2 customer ids",
                occurred_at=ago(hours=2),
                subject="chloe@1",
                source_id=json_source.pk,
            )
        ],
        rule="identity",
    )
    review, _ = start_review(reviewer)
    client.force_login(viewer)

    content = page(client, url(review))

    assert "chloe.martin@example.com" not in content
    assert "c•••@example.com is used by 2 customer ids" in content
    client.force_login(reviewer)
    assert "chloe.martin@example.com is used" in page(client, url(review))


def test_the_card_shows_the_provider_text_it_used_to_point_to(
    client, reviewer, viewer, json_source
):
    said = "550 5.1.1 <chloe.martin@example.com>: Recipient address rejected."
    send(
        json_source,
        event(
            "order-77",
            "bounced",
            ago(hours=3).isoformat(),
            "cus_77",
            recipient="chloe.martin@example.com",
            code="550",
            message=said + " Check the address with the customer." * 20,
        ),
    )
    record_failures(Notification.objects.filter(source=json_source, counts_as_failure=True))
    review, _ = start_review(reviewer)
    client.force_login(reviewer)

    content = page(client, url(review))

    card = content[content.index('<section class="panel review-card"') :]
    card = card[: card.index("</section>")]
    assert "SendGrid said, verbatim (latest example)" in card
    assert f"550 — {said} Check the address" in card
    assert "customer. Check the address with the customer." * 19 not in card  # bounded
    assert "Open the exception: every occurrence, the chart and the full history →" in card
    assert "provider text" not in card

    client.force_login(viewer)
    card = page(client, url(review))
    assert "chloe.martin@example.com" not in card
    assert "550 — 550 5.1.1 <c•••@example.com>: Recipient address rejected." in card


def test_a_card_without_provider_text_shows_none(client, reviewer, review):
    client.force_login(reviewer)
    silent = review.items.get(group__kind="silence")

    content = page(client, url(review, silent))

    assert "verbatim" not in content
    assert "Open the exception: every occurrence, the chart and the full history →" in content


def test_an_unknown_review_is_not_found(client, reviewer, db):
    client.force_login(reviewer)
    assert client.get(reverse("review_detail", args=[999])).status_code == 404
