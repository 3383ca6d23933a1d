"""crm-csv: a daily spreadsheet export of reminders and campaigns."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

from notifwatch.demo.formats import hexs, iso_s, secs
from notifwatch.demo.messages import Message
from notifwatch.demo.scenarios import assign, missing_form
from notifwatch.demo.traffic import LogFile
from notifwatch.demo.world import REDRAWS, World, contract_id, local_window
from notifwatch.ingest.importer import csv_lines

CRM_PURPOSES = (
    ("renewal_reminder", "email", "brevo", 45),
    ("spring_sale_campaign", "email", "brevo", 30),
    ("appointment_reminder", "other", "whatsapp", 15),
    ("renewal_reminder_sms", "sms", "messagebird", 10),
)
CRM_SCENARIOS = (("bounce", 0.03, 1), ("complaint", 0.004, 1), ("no_outcome", 0.015, 1))
CRM_CAMPAIGN_SCENARIOS = (("unsubscribed", 0.03, 1),)
CRM_WHATSAPP_SCENARIOS = (("undeliverable", 0.03, 1),)
# What the CRM's providers reported: (status, error code, error message).
CRM_FAILURES = {
    "bounce": ("bounced", "5.1.1", "550 5.1.1 Recipient address rejected: mailbox unavailable"),
    "undeliverable": (
        "failed",
        "131026",
        "Message undeliverable: recipient cannot receive WhatsApp messages",
    ),
}
CRM_COLUMNS = (
    "event_id occurred_at notification_key channel purpose status attempt customer_id "
    "recipient refs.contract_id refs.campaign_id provider provider_message_id error_code "
    "error_message"
).split()


def crm_files(world: World, count: int) -> list[LogFile]:
    rng = world.rng("crm")
    messages = crm_messages(world, rng, count)
    rows_by_day: dict[str, list[list[str]]] = defaultdict(list)
    seq = 0
    for message in sorted(messages, key=lambda m: m.at):
        for ts, row in crm_rows(message, rng):
            seq += 1
            row["event_id"] = f"crm-evt-{seq:07d}"
            rows_by_day[world.local(ts).date().isoformat()].append([row[c] for c in CRM_COLUMNS])
    return crm_exports(world, rng, rows_by_day)


def crm_messages(world: World, rng: random.Random, count: int) -> list[Message]:
    weights = [w for *_, w in CRM_PURPOSES]
    campaign_days = [
        local_window(world.now, world.tz, 5, 10, 10.75),
        local_window(world.now, world.tz, 1, 10, 10.75),
    ]
    messages: list[Message] = []
    reminded: set[tuple[str, str]] = set()  # (purpose, contract id)
    for index in range(count):
        purpose, channel, provider, _ = rng.choices(CRM_PURPOSES, weights)[0]
        if purpose == "spring_sale_campaign":
            customer = world.pick_customer(rng)
            at = rng.choice(campaign_days).pick(rng)
            refs = {"campaign_id": "CMP-SPRING-25"}
        else:
            # One reminder of a kind per contract in the week: a second one would be a
            # duplicate send the demo did not mean to show.
            customer = world.pick_customer(rng)
            for _ in range(REDRAWS):
                if (purpose, contract_id(customer)) not in reminded:
                    break
                customer = world.pick_customer(rng)
            reminded.add((purpose, contract_id(customer)))
            at = world.pick_time(rng, "office")
            refs = {"contract_id": contract_id(customer)}
        key = f"crm-{index + 1:06d}:{purpose}:{channel}"
        messages.append(
            Message(at, purpose, channel, customer, key, refs, provider, missing_form(rng))
        )
    emails = [m for m in messages if m.channel == "email"]
    assign(rng, emails, CRM_SCENARIOS, "scenario")
    assign(
        rng,
        [m for m in emails if m.purpose == "spring_sale_campaign"],
        CRM_CAMPAIGN_SCENARIOS,
        "scenario",
    )
    assign(rng, [m for m in messages if m.channel == "other"], CRM_WHATSAPP_SCENARIOS, "scenario")
    return messages


def crm_rows(message: Message, rng: random.Random) -> list[tuple[datetime, dict]]:
    """The export rows about one message, by column name; event ids are numbered by the caller."""
    msg_id = f"crm-msg-{hexs(rng, 12)}"
    t = message.at
    done = t + secs(5 + 60 * rng.random())
    if message.scenario == "unsubscribed":
        statuses = [(t, "suppressed", "", "")]  # the CRM skipped an unsubscribed contact
    else:
        statuses = [(t, "sent", "", "")]
        if message.scenario in CRM_FAILURES:
            statuses.append((done, *CRM_FAILURES[message.scenario]))
        elif message.scenario != "no_outcome":  # no_outcome: no delivery report came back
            statuses.append((done, "delivered", "", ""))
            if message.scenario == "complaint":
                later = done + timedelta(hours=2 + 10 * rng.random())
                statuses.append((later, "complained", "", ""))
    return [
        (ts, crm_row(message, msg_id, ts, status, code, text))
        for ts, status, code, text in statuses
    ]


def crm_row(message: Message, msg_id: str, ts: datetime, status: str, code: str, text: str) -> dict:
    return {
        "occurred_at": iso_s(ts),
        "notification_key": message.key,
        "channel": message.channel,
        "purpose": message.purpose,
        "status": status,
        "attempt": "1",
        "customer_id": message.customer_id,
        "recipient": message.customer.email_at(message.at)
        if message.channel == "email"
        else message.customer.phone,
        "refs.contract_id": message.refs.get("contract_id", ""),
        "refs.campaign_id": message.refs.get("campaign_id", ""),
        "provider": message.provider,
        "provider_message_id": msg_id,
        "error_code": code,
        "error_message": text,
    }


def crm_exports(
    world: World, rng: random.Random, rows_by_day: dict[str, list[list[str]]]
) -> list[LogFile]:
    """One CSV per day, exported at 06:00 the next morning; one day has two broken rows."""
    files = []
    previous: list[list[str]] = []
    days = sorted(rows_by_day)
    broken_day = days[len(days) // 2] if days else ""
    for day in days:
        exported = datetime.combine(
            datetime.fromisoformat(day).date() + timedelta(days=1), time(6, 0), tzinfo=world.tz
        ).astimezone(UTC)
        if exported > world.now:
            continue  # today's export has not run yet
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CRM_COLUMNS)
        # The export window overlaps the previous day by a few rows (re-imported, deduplicated).
        for row in previous[-3:] + rows_by_day[day]:
            writer.writerow(row)
        text = buffer.getvalue()
        if day == broken_day:
            text += crm_broken_rows(world, rng, day)
        previous = rows_by_day[day]
        lines = list(csv_lines(io.BytesIO(text.encode())))
        files.append(
            LogFile(
                "crm-csv",
                f"crm-reminders-{day}.csv",
                lines,
                {},
                default_arrival=exported + secs(40),
            )
        )
    return files


def crm_broken_rows(world: World, rng: random.Random, day: str) -> str:
    customer = world.pick_customer(rng)
    date_ = datetime.fromisoformat(day)
    # An unquoted comma in a campaign name, and a date typed the local way.
    return (
        f"crm-evt-9{rng.randint(100000, 999999)},{day}T11:04:00Z,crm-x1:renewal_reminder:email,email,"
        f"renewal_reminder,delivered,1,{customer.id},{customer.email},{contract_id(customer)},Spring, 2nd wave,brevo,"
        f"crm-msg-{hexs(rng, 12)},,\n"
        f"crm-evt-9{rng.randint(100000, 999999)},{date_:%d/%m/%Y} 11:20,crm-x2:renewal_reminder:email,email,"
        f"renewal_reminder,delivered,1,{customer.id},{customer.email},{contract_id(customer)},,brevo,"
        f"crm-msg-{hexs(rng, 12)},,\n"
    )
