"""Keys the console makes keep their values: messages stored under them are still found after a release."""
from messaging import idempotency


def test_each_kind_of_key_keeps_the_value_messages_are_stored_under():
    request = idempotency.Key("user:3", "order-1")
    assert idempotency.bulk_item_key(request, 7) == ("user:3", "order-1#7")
    assert idempotency.campaign_message_key(run_id=7, contact_id=42) == ("campaign", "run-7:42")
    assert not idempotency.campaign_message_key(run_id=7, contact_id=42).fingerprinted  # names the message itself
    assert idempotency.keyword_reply_key(batch_id=5, rule_id=2) == ("", "console:inbound-batch:5:rule:2")
    assert idempotency.resend_key(9) == ("", "console:resend-of:9")
    assert len("x" * idempotency.BULK_REQUEST_KEY_MAX_LENGTH + "#999") < idempotency.MAX_LENGTH
