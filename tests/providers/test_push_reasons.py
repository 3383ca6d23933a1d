"""Push-sender results (FCM HTTP v1, APNs) read with the catalogue's documented meanings.

Our own fixtures in the push sender's log format (fixtures/push/10-12), imported with the
push_sender preset the way a team would import them: the sender's own outcome says failed, the
provider's code says why and who fixes it, and the provider's text stays beside the reason.
"""

import pytest

from notifwatch.deliveries.models import Notification
from notifwatch.ingest.importer import import_path

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("file", "key", "code", "category", "fix_owner", "raw_text"),
    [
        # FCM answers a bad registration and a badly built message with the same code: which
        # one it was is only in its text, so the reason says unknown instead of guessing.
        (
            "10_fcm_invalid_argument_400.jsonl",
            "ntf_PU0010",
            "INVALID_ARGUMENT",
            "unknown",
            "unknown",
            "The registration token is not a valid FCM registration token",
        ),
        (
            "10_fcm_invalid_argument_400.jsonl",
            "ntf_PU0011",
            "INVALID_ARGUMENT",
            "unknown",
            "unknown",
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
        ),
        # A registration made for another app project or app: our sending setup, not the
        # customer's device.
        (
            "11_fcm_sender_id_mismatch_403.json",
            "ntf_PU0012",
            "SENDER_ID_MISMATCH",
            "auth_or_config_error",
            "our_setup",
            "SenderId mismatch",
        ),
        (
            "12_apns_device_token_not_for_topic_400.json",
            "ntf_PU0013",
            "DeviceTokenNotForTopic",
            "auth_or_config_error",
            "our_setup",
            "DeviceTokenNotForTopic",
        ),
    ],
)
def test_a_push_refusal_is_explained_by_its_documented_meaning(
    push_source, fixture_path, file, key, code, category, fix_owner, raw_text
):
    import_path(push_source, str(fixture_path("push", file)))

    notification = Notification.objects.get(notification_key=key)
    assert notification.final_status == "failed"
    assert notification.counts_as_failure is True
    assert notification.error_code == code
    assert notification.reason_category == category
    assert notification.fix_owner == fix_owner
    assert notification.permanent is True
    assert notification.error_message == raw_text


def test_an_unregistered_device_is_still_the_customers_device(push_source, fixture_path):
    import_path(push_source, str(fixture_path("push", "02_fcm_unregistered_404.json")))

    notification = Notification.objects.get(notification_key="ntf_PU0002")
    assert (notification.reason_category, notification.fix_owner) == (
        "device_token_invalid",
        "recipient_data",
    )
