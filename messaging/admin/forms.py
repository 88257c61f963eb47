"""The forms of the messages admin: composing a message, and the read-only page of an existing one."""
import uuid

from django import forms
from django.conf import settings
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.utils import timezone

from messaging import services
from messaging.models import OutboundMessage


class ComposeMessageForm(forms.ModelForm):
    """Phone, instance, text and an optional send time, validated by the same service as POST /messages.

    A send time needs the schedule permission, as it does in the API; the admin sets ``may_schedule`` per user.
    """

    may_schedule = False

    instance = forms.ChoiceField()
    scheduled_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, label="Send at",
    )
    expires_at = forms.SplitDateTimeField(required=False, widget=AdminSplitDateTime, label="Expires at")
    valid_for_seconds = forms.IntegerField(
        required=False, min_value=1, label="Valid for (seconds)",
        help_text="Instead of an expiry time: seconds from now (from the send time, if set) before it expires.",
    )
    # Makes a double-submitted form one message: it becomes the message's idempotency key.
    compose_token = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = OutboundMessage
        fields = ["phone", "instance", "text", "scheduled_at", "expires_at"]
        widgets = {"phone": forms.TextInput(attrs={"placeholder": "+55 11 98765-4321", "autocomplete": "off"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [(name, name) for name in settings.EVOLUTION_INSTANCES]
        self.fields["instance"].initial = settings.EVOLUTION_INSTANCE_NAME
        self.fields["phone"].help_text = "With the country code, in any format: +55 11 98765-4321, 5511987654321."
        self.fields["text"].strip = False  # sent exactly as typed, like the API
        self.fields["text"].help_text = f"Up to {settings.MESSAGING_MAX_TEXT_LENGTH} characters."
        zone = timezone.get_current_timezone()
        now = timezone.localtime()
        self.fields["scheduled_at"].help_text = (
            f"Leave empty to send now. Times are in your time zone, {zone.key if hasattr(zone, 'key') else zone} "
            f"(UTC{now.strftime('%z')[:3]}:{now.strftime('%z')[3:]}); it is {now:%Y-%m-%d %H:%M} there now."
        )
        self.fields["expires_at"].help_text = (
            "Optional. Not sent by then, it is never sent and ends expired (a code that arrives late is useless)."
        )
        self.fields["compose_token"].initial = uuid.uuid4().hex

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("scheduled_at") is not None and not self.may_schedule:
            self.add_error("scheduled_at", "You do not have permission to schedule messages: leave it empty to send now.")
        try:
            valid = services.validate_message(
                phone=cleaned.get("phone") or "",
                text=cleaned.get("text") or "",
                instance=cleaned.get("instance"),
                scheduled_at=cleaned.get("scheduled_at"),
                expires_at=cleaned.get("expires_at"),
                valid_for_seconds=cleaned.get("valid_for_seconds"),
            )
        except ValidationError as error:
            for field, field_errors in error.message_dict.items():
                if field not in self.errors:  # "required" already said it
                    self.add_error(field if field in self.fields else None, field_errors)
            return cleaned
        cleaned.update(valid)
        return cleaned

    def _post_clean(self):
        # The model's own checks would judge the phone as typed; the service above already judged it normalised.
        pass


class MessageRecordForm(forms.ModelForm):
    """An existing message's page: every field is read-only, so the hints on what to type are left out."""

    class Meta:
        model = OutboundMessage
        fields = []
        # The admin shows a model field's help_text under a read-only value unless the form names another one.
        help_texts = {field.name: "" for field in OutboundMessage._meta.get_fields() if field.concrete}
