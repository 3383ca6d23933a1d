from datetime import timedelta

from notifwatch.api.models import ApiToken
from notifwatch.api.tokens import PREFIX, create_token, record_read, revoke_token, token_for


def test_it_issues_distinct_prefixed_tokens_and_finds_each_by_its_header(viewer):
    first = create_token(viewer, "one", actor=viewer)
    second = create_token(viewer, "two", actor=viewer)

    assert first.secret.startswith(PREFIX) and first.secret != second.secret
    assert token_for(f"Bearer {first.secret}") == first.token
    assert token_for(f"bearer   {second.secret} ") == second.token
    assert token_for(first.secret) is None


def test_it_no_longer_finds_a_revoked_token(viewer):
    issued = create_token(viewer, "one", actor=viewer)

    assert revoke_token(issued.token, actor=viewer) is True
    assert revoke_token(issued.token, actor=viewer) is False
    assert token_for(f"Bearer {issued.secret}") is None


def test_it_notes_the_last_use_at_most_once_a_minute(viewer):
    issued = create_token(viewer, "one", actor=viewer)
    record_read(issued.token, "/api/v1/sources", 1, 200)
    first = ApiToken.objects.get().last_used_at

    record_read(issued.token, "/api/v1/sources", 1, 200)
    assert ApiToken.objects.get().last_used_at == first

    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    record_read(issued.token, "/api/v1/sources", 1, 200)
    assert ApiToken.objects.get().last_used_at > first
