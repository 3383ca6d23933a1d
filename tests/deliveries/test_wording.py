import pytest

from notifwatch.deliveries.models import FinalStatus, Notification
from notifwatch.deliveries.wording import reference_rows, verdict, words


@pytest.mark.parametrize(
    ("attempts", "headline"),
    [
        (0, "Delivered on the first attempt"),
        (1, "Delivered on the first attempt"),
        (2, "Delivered on the 2nd attempt"),
        (3, "Delivered on the 3rd attempt"),
        (4, "Delivered on the 4th attempt"),
        (11, "Delivered on the 11th attempt"),
        (12, "Delivered on the 12th attempt"),
        (13, "Delivered on the 13th attempt"),
        (21, "Delivered on the 21st attempt"),
        (112, "Delivered on the 112th attempt"),
    ],
)
def test_it_counts_the_attempt_that_delivered(attempts, headline):
    n = Notification(final_status=FinalStatus.DELIVERED, attempts=attempts)
    assert verdict(n, personal=True).headline == headline


def test_it_reads_stored_names_aloud():
    assert words("order_confirmation") == "Order confirmation"
    assert words(" PASSWORD-reset ") == "Password reset"


def test_it_names_references_in_order_with_their_short_labels():
    refs = {"ticket_id": "T-9", "order_id": "ORD-1", "contract_no": "C-3"}
    assert reference_rows(refs) == [("Contract no", "C-3"), ("Order", "ORD-1"), ("Ticket", "T-9")]
