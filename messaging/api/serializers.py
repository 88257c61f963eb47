from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from messaging.models import MessageStatus, OutboundMessage, SendAttempt
from messaging.services import BULK_MAX_MESSAGES


class MessageCreateSerializer(serializers.Serializer):
    """The request body of POST /messages. Only shapes and types here; the service checks the content."""

    phone = serializers.CharField(help_text='Any format a person types, with country code: "+55 11 98765-4321".')
    message = serializers.CharField(trim_whitespace=False, help_text="The text, up to 4096 characters.")
    instance_name = serializers.CharField(required=False, help_text="Evolution instance; default EVOLUTION_INSTANCE_NAME.")
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True, help_text="ISO 8601; in the future.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="ISO 8601; not sent by then, the message ends expired and is never sent. After scheduled_at.",
    )
    valid_for_seconds = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="Instead of expires_at: seconds from now (from scheduled_at when given) before it expires.",
    )
    callback_url = serializers.CharField(
        required=False, allow_blank=True, allow_null=True,
        help_text="http(s) address each status change (sent, delivered, read, failed, expired) is POSTed to, "
                  "signed with the API client's callback secret (X-Console-Signature). API clients only.",
    )


class SendAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = SendAttempt
        fields = [
            "number", "outcome", "started_at", "finished_at", "duration_ms", "http_status", "error_kind",
            "error_text", "maybe_sent", "reconciled", "evolution_message_id",
        ]


class MessageSerializer(serializers.ModelSerializer):
    success = serializers.SerializerMethodField()
    message = serializers.CharField(source="text")
    instance_name = serializers.CharField(source="instance")
    task_id = serializers.SerializerMethodField()

    class Meta:
        model = OutboundMessage
        fields = [
            "success", "id", "status", "phone", "message", "instance_name", "scheduled_at", "expires_at", "task_id",
            "attempt_count", "evolution_message_id", "remote_jid", "last_error_kind", "last_error",
            "resend_of", "created_at", "sent_at", "finished_at", "delivered_at", "read_at", "callback_url",
        ]

    def get_success(self, message) -> bool:
        return True

    def get_task_id(self, message) -> str | None:
        return message.task_id or None


class MessageDetailSerializer(MessageSerializer):
    attempts = SendAttemptSerializer(many=True, read_only=True)

    class Meta(MessageSerializer.Meta):
        fields = MessageSerializer.Meta.fields + ["attempts"]


class MessageFilterSerializer(serializers.Serializer):
    # Empty is "any", as the selector reads it (``?status=&phone=`` from a form lists everything).
    status = serializers.ChoiceField(choices=MessageStatus.choices, required=False, allow_blank=True)
    phone = serializers.CharField(required=False, allow_blank=True)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    # What made the messages (OutboundMessage.source): a campaign's, or one run's ("campaign:12:run:3").
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="A campaign's id.")
    source = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                   help_text='Exactly this source, e.g. "campaign:12:run:3" (one run of a campaign).')

    def validate(self, attrs):
        # DRF reads an empty query value as absent; an empty date is no date, so say so rather than list everything.
        empty = [name for name in ("created_after", "created_before") if self.initial_data.get(name) == ""]
        if empty:
            raise serializers.ValidationError({name: ["Datetime has wrong format. Use ISO 8601."] for name in empty})
        return attrs


def read_bulk_item(raw) -> tuple[dict | None, dict[str, list[str]] | None]:
    """Shape-check one item of POST /messages/bulk the way MessageCreateSerializer would, without building a
    serializer per item (a thousand of them cost more than storing the messages). Returns the service's
    keyword values, or the errors by API field name. The content (phone, text, instance, send time) is the
    service's job (``services.validate_message``)."""
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["Expected an object with phone and message."]}
    errors: dict[str, list[str]] = {}
    values: dict = {}
    for field, service_name, required in (
        ("phone", "phone", True), ("message", "text", True), ("instance_name", "instance", False),
        ("callback_url", "callback_url", False),
    ):
        value = raw.get(field)
        if value is None:
            if required:
                errors[field] = ["This field is required."]
        elif not isinstance(value, str):
            errors[field] = ["Not a valid string."]
        else:
            values[service_name] = value
    for field in ("scheduled_at", "expires_at"):
        if raw.get(field) is not None:
            parsed = _datetime(raw[field])
            if parsed is None:
                errors[field] = ["Datetime has wrong format. Use ISO 8601, e.g. 2030-01-01T10:00:00Z."]
            else:
                values[field] = parsed
    valid_for = raw.get("valid_for_seconds")
    if valid_for is not None:
        if isinstance(valid_for, bool) or not isinstance(valid_for, int):
            errors["valid_for_seconds"] = ["A valid integer is required."]
        else:
            values["valid_for_seconds"] = valid_for
    return (None, errors) if errors else (values, None)


def _datetime(value):
    """An ISO 8601 string as a datetime, or None for anything else (including a month 13)."""
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


# --- Shapes that only document answers (/schema); the views build these bodies as dicts. ----------------------


@extend_schema_field({"type": "boolean", "enum": [False]})
class FalseField(serializers.BooleanField):
    """``success`` of an error: always false."""


class ApiErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text='Stable, for programs: "invalid", "not_authenticated", "not_found", ...')
    message = serializers.CharField(help_text="For people: the first problem, naming its field.")
    fields = serializers.DictField(
        required=False,
        help_text="Validation errors by field as the client sent it (a header, a body field, or \"body\").",
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    """Every API error (messaging/api/errors.py)."""

    success = FalseField()
    error = ApiErrorSerializer()


class BulkItemSerializer(serializers.Serializer):
    phone = serializers.CharField()
    message = serializers.CharField(trim_whitespace=False)
    instance_name = serializers.CharField(required=False)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    valid_for_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    callback_url = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class BulkRequestSerializer(serializers.Serializer):
    messages = serializers.ListField(
        child=BulkItemSerializer(), min_length=1, max_length=BULK_MAX_MESSAGES,
        help_text=f"1 to {BULK_MAX_MESSAGES:,} messages, each validated on its own.",
    )


class BulkResultItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request.")
    id = serializers.IntegerField(required=False, help_text="Accepted: the message's id.")
    task_id = serializers.CharField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=MessageStatus.choices, required=False)
    errors = serializers.DictField(required=False, help_text="Rejected: its errors by field.")


class BulkResultSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Whether at least one item was accepted.")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BulkResultItemSerializer(many=True)


class BulkRejectedSerializer(ErrorEnvelopeSerializer):
    """400 of POST /messages/bulk: the error envelope; when the items were read, also each item's errors."""

    accepted = serializers.IntegerField(required=False)
    rejected = serializers.IntegerField(required=False)
    results = BulkResultItemSerializer(many=True, required=False)
