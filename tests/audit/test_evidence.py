"""The weekly evidence pack: what it holds, its files, who may take it, and that taking it is audited."""

import csv
import io
import json
import zipfile
import zoneinfo
from datetime import UTC, date, timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from notifwatch.audit.evidence import bundle_zip, evidence_pack, week_bounds
from notifwatch.audit.models import AuditEntry
from notifwatch.failures.models import Status
from tests.audit.evidence_data import ADDRESS, FORMULA, held_week

pytestmark = pytest.mark.django_db

MINUTES_HEADER = [
    "review_id",
    "review_started_by",
    "review_started_at",
    "review_finished_by",
    "review_finished_at",
    "review_note",
    "position",
    "exception_id",
    "exception_title",
    "reason_on_agenda",
    "reason_detail",
    "decision",
    "snooze_until",
    "owner_team",
    "owner_person",
    "decided_by",
    "decided_at",
    "note",
]
EXCEPTIONS_HEADER = [
    "exception_id",
    "title",
    "kind",
    "source",
    "channel",
    "purpose",
    "on_agenda",
    "status_at_week_end",
    "status_now",
    "owner_team",
    "owner_person",
    "occurrences_in_week",
    "customers_in_week",
    "occurrences_total",
    "customers_affected",
    "customers_reached_anyway",
    "customers_not_reached",
    "first_seen",
    "last_seen",
    "merged_into",
]
AUDIT_HEADER = [
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "old",
    "new",
    "detail",
]


@pytest.fixture
def week(reviewer, json_source):
    return held_week(reviewer, json_source)


def unzip(body: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def page_url(week) -> str:
    return reverse("evidence_page", args=[week.monday.isoformat()])


def zip_url(week) -> str:
    return reverse("evidence_download", args=[week.monday.isoformat()])


# --- the week ------------------------------------------------------------------------------


def test_a_week_runs_from_monday_midnight_to_the_next_in_local_time():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")

    start, end = week_bounds(date(2026, 10, 19), berlin)  # the clocks go back on the 25th

    assert (start.isoformat(), end.isoformat()) == (
        "2026-10-19T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )
    # (Aware datetimes in one zone subtract as wall-clock times: compare in UTC.)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=169)


def test_only_a_monday_starts_a_week(db):
    with pytest.raises(ValueError):
        evidence_pack(date(2026, 11, 18), show_personal_data=True)


# --- contents ------------------------------------------------------------------------------


def test_the_minutes_name_each_decision_its_owner_and_when(week, reviewer):
    pack = evidence_pack(week.monday, show_personal_data=True, generated_by="rita")

    (review,) = pack.reviews
    assert (review.started_by, review.finished_by) == ("rita", "rita")
    assert review.finished_at == week.review.completed_at
    assert (review.items, review.decided, review.carried_over) == (3, 2, 1)
    rows = {row.exception_id: row for row in pack.minutes}
    assigned = rows[week.new.pk]
    assert (assigned.decision, assigned.owner_team, assigned.owner_person) == (
        "assign",
        "Billing",
        "rita",
    )
    assert assigned.decided_by == "rita" and assigned.decided_at is not None
    assert assigned.note == f"Customer {ADDRESS} complained"
    assert rows[week.old.pk].decision == "accept" and rows[week.old.pk].note == FORMULA
    assert rows[week.left.pk].decision == "" and rows[week.left.pk].decided_at is None
    assert all(row.review_note == "Two decided, one for next week." for row in pack.minutes)


def test_the_exceptions_carry_their_impact_in_the_week(week):
    pack = evidence_pack(week.monday, show_personal_data=True)

    rows = {row.exception_id: row for row in pack.exceptions}
    assert set(rows) == {week.old.pk, week.new.pk, week.left.pk}
    new = rows[week.new.pk]
    assert (new.occurrences_in_week, new.customers_in_week, new.occurrences_total) == (3, 3, 3)
    assert (new.customers_affected, new.customers_reached_anyway, new.customers_not_reached) == (
        3,
        0,
        3,
    )
    assert (new.status_now, new.owner_team, new.owner_person, new.on_agenda) == (
        Status.ASSIGNED,
        "Billing",
        "rita",
        True,
    )
    old = rows[week.old.pk]
    # It bounced last week only; it is here because it was on this week's agenda.
    assert (old.occurrences_in_week, old.occurrences_total, old.status_now) == (
        0,
        2,
        Status.ACCEPTED,
    )
    assert pack.summary["occurrences_in_week"] == 4
    assert pack.summary["customers_in_week"] == 4


def test_the_audit_entries_are_the_weeks_about_its_exceptions_and_reviews(week):
    pack = evidence_pack(week.monday, show_personal_data=True)

    actions = [entry.action for entry in pack.audit]
    assert actions
    assert {"review.started", "review.decided", "review.finished"} <= set(actions)
    assert actions.count("review.decided") == 2
    assert "exception.status" in actions and "exception.assigned" in actions
    # The old exception's creation was recorded the week before: not this week's evidence.
    old_created = AuditEntry.objects.get(
        action="exception.created", target_id=str(week.old.pk), target_type="failures.failuregroup"
    )
    assert old_created.at < week.start
    assert not any(
        entry.action == "exception.created" and entry.target_id == str(week.old.pk)
        for entry in pack.audit
    )
    # Nothing about other things (the source was created this week too).
    assert not any(entry.action.startswith("source.") for entry in pack.audit)
    assert all(week.start <= entry.at < week.end for entry in pack.audit)
    assert [entry.at for entry in pack.audit] == sorted(entry.at for entry in pack.audit)


def test_last_weeks_pack_has_the_status_each_exception_ended_that_week_with(week):
    pack = evidence_pack(week.monday - timedelta(days=7), show_personal_data=True)

    assert pack.reviews == [] and pack.minutes == []
    (old,) = pack.exceptions
    assert old.exception_id == week.old.pk
    assert (old.occurrences_in_week, old.status_at_week_end, old.status_now) == (
        2,
        Status.NEW,
        Status.ACCEPTED,
    )
    assert [(entry.action, entry.target_id) for entry in pack.audit] == [
        ("exception.created", str(week.old.pk))
    ]


def test_it_reads_a_week_in_a_fixed_number_of_queries(week, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        pack = evidence_pack(week.monday, show_personal_data=True)
    assert len(pack.exceptions) == 3 and len(pack.minutes) == 3


# --- the ZIP -------------------------------------------------------------------------------


def test_the_zip_holds_four_files_with_stable_columns_and_a_readme(week):
    files = unzip(bundle_zip(evidence_pack(week.monday, show_personal_data=True)))

    assert set(files) == {
        "minutes.csv",
        "exceptions.csv",
        "audit.csv",
        "evidence.json",
        "README.txt",
    }
    headers = {
        name: next(csv.reader(io.StringIO(files[name])))
        for name in ("minutes.csv", "exceptions.csv", "audit.csv")
    }
    assert headers == {
        "minutes.csv": MINUTES_HEADER,
        "exceptions.csv": EXCEPTIONS_HEADER,
        "audit.csv": AUDIT_HEADER,
    }
    for column in MINUTES_HEADER + EXCEPTIONS_HEADER:
        assert column in files["README.txt"]

    minutes = {row["exception_id"]: row for row in table(files["minutes.csv"])}
    assigned = minutes[str(week.new.pk)]
    assert (assigned["owner_team"], assigned["owner_person"], assigned["decision"]) == (
        "Billing",
        "rita",
        "assign",
    )
    assert assigned["decided_at"].endswith("Z") and assigned["review_finished_at"].endswith("Z")
    exceptions = {row["exception_id"]: row for row in table(files["exceptions.csv"])}
    assert exceptions[str(week.new.pk)]["customers_not_reached"] == "3"
    assert exceptions[str(week.new.pk)]["on_agenda"] == "true"

    document = json.loads(files["evidence.json"])
    assert document["kind"] == "evidence_pack"
    assert document["week"]["start"] == week.monday.isoformat()
    assert document["summary"]["decided"] == 2
    assert document["reviews"][0]["finished_by"] == "rita"
    assert len(document["minutes"]) == 3 and len(document["exceptions"]) == 3
    assert len(document["audit"]) == len(table(files["audit.csv"]))
    assert {"review.finished"} <= {entry["action"] for entry in document["audit"]}


def test_a_note_that_looks_like_a_formula_stays_text_in_the_csv_files(week):
    files = unzip(bundle_zip(evidence_pack(week.monday, show_personal_data=True)))

    minutes = {row["exception_id"]: row for row in table(files["minutes.csv"])}
    assert minutes[str(week.old.pk)]["note"] == "'" + FORMULA
    decided = [
        row
        for row in table(files["audit.csv"])
        if row["action"] == "review.decided" and row["detail"].endswith(FORMULA)
    ]
    assert [row["detail"] for row in decided] == ["'" + FORMULA]
    # JSON is not opened in spreadsheets: it keeps the note as written.
    notes = [row["note"] for row in json.loads(files["evidence.json"])["minutes"]]
    assert FORMULA in notes


# --- the pages -----------------------------------------------------------------------------


def test_the_printable_page_shows_the_minutes_exceptions_and_audit(client, week, reviewer):
    client.force_login(reviewer)

    response = client.get(page_url(week))

    assert response.status_code == 200
    content = unescape(response.content.decode())
    heading = f"Evidence pack — week of {week.monday:%a} {week.monday.day} {week.monday:%b %Y}"
    assert f"<h1>{heading}</h1>" in content
    assert "Billing (team) · rita (person)" in content
    assert (
        "<strong>Assigned</strong>" in content
        and "<strong>Accepted as expected</strong>" in content
    )
    assert "review.finished" in content
    assert f"Customer {ADDRESS} complained" in content  # a reviewer sees personal data
    assert "Print / Save as PDF" in content and "evidence.css" in content


def test_the_index_lists_weeks_with_reviews_and_picks_any_week(client, week, auditor):
    client.force_login(auditor)

    index = client.get(reverse("evidence_index"))
    assert index.status_code == 200
    assert page_url(week) in index.content.decode()

    wednesday = week.monday + timedelta(days=2)
    picked = client.get(reverse("evidence_index"), {"day": wednesday.isoformat()})
    assert picked.status_code == 302 and picked["Location"] == page_url(week)

    not_monday = client.get(reverse("evidence_page", args=[wednesday.isoformat()]))
    assert not_monday.status_code == 302 and not_monday["Location"] == page_url(week)
    assert client.get("/evidence/2026-02-30/").status_code == 404


def test_a_bad_date_is_explained_next_to_the_field(client, auditor):
    client.force_login(auditor)

    response = client.get(reverse("evidence_index"), {"day": "2026-02-30"})

    assert response.status_code == 200
    content = response.content.decode()
    field = content[content.index('id="field-day"') :]
    field = field[: field.index("</div>")]
    assert "Enter a date as YYYY-MM-DD" in field
    future = timezone.localdate() + timedelta(days=8)
    later = client.get(reverse("evidence_index"), {"day": future.isoformat()}).content.decode()
    assert "That week has not started yet." in later


@pytest.mark.parametrize("name", ["evidence_index", "evidence_page", "evidence_download"])
def test_viewers_may_not_take_evidence(client, week, viewer, name):
    client.force_login(viewer)
    args = [] if name == "evidence_index" else [week.monday.isoformat()]

    assert client.get(reverse(name, args=args)).status_code == 403
    assert not AuditEntry.objects.filter(action="export.downloaded").exists()


def test_it_needs_a_login(client, week):
    assert client.get(zip_url(week)).status_code == 302


def test_an_auditor_downloads_it_masked_and_the_download_is_audited(client, week, auditor):
    client.force_login(auditor)

    response = client.get(zip_url(week))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="notifwatch-evidence-{week.monday.isoformat()}.zip"'
    )
    files = unzip(response.content)
    everything = "".join(files.values())
    assert ADDRESS not in everything
    minutes = {row["exception_id"]: row for row in table(files["minutes.csv"])}
    assert minutes[str(week.new.pk)]["note"] == "Customer p•••@example.com complained"
    assert json.loads(files["evidence.json"])["personal_data"] == "masked"

    export = AuditEntry.objects.get(action="export.downloaded")
    assert export.actor == auditor
    assert (export.target_type, export.target_id) == ("export", "evidence_pack")
    assert export.new["kind"] == "evidence_pack"
    assert export.new["format"] == "zip"
    assert export.new["week"] == week.monday.isoformat()
    assert export.new["personal_data"] == "masked"
    assert export.new["rows"] > 0


def test_viewing_the_printable_page_is_audited_too(client, week, auditor):
    client.force_login(auditor)

    content = client.get(page_url(week)).content.decode()

    assert ADDRESS not in unescape(content)
    (export,) = AuditEntry.objects.filter(action="export.downloaded")
    assert (export.new["format"], export.new["week"]) == ("html", week.monday.isoformat())


def test_the_minutes_and_the_review_list_link_to_the_pack(client, week, reviewer, viewer):
    client.force_login(reviewer)
    minutes = client.get(reverse("review_minutes", args=[week.review.pk])).content.decode()
    reviews = client.get(reverse("review_list")).content.decode()
    assert page_url(week) in minutes and page_url(week) in reviews

    client.force_login(viewer)
    minutes = client.get(reverse("review_minutes", args=[week.review.pk])).content.decode()
    assert page_url(week) not in minutes
