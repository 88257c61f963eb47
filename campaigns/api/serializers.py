from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import Campaign, CampaignStatus, ContactImport, ImportStatus, RunStatus


class RecurrenceSerializer(serializers.Serializer):
    crontab = serializers.CharField(required=False, help_text='"minute hour day month weekday", in time_zone.')
    every_seconds = serializers.IntegerField(required=False, min_value=60)


class QuietHoursSerializer(serializers.Serializer):
    start = serializers.TimeField(help_text='"22:00"')
    end = serializers.TimeField(help_text='"08:00"; may be earlier than start (the window crosses midnight).')


class CampaignCreateSerializer(serializers.Serializer):
    """The body of POST /campaigns. Shapes and types here; the service checks the content."""

    name = serializers.CharField(max_length=200)
    text = serializers.CharField(trim_whitespace=False, help_text="A template: {name}, {phone} and any recipient field.")
    instance = serializers.CharField(required=False, help_text="Evolution instance; default EVOLUTION_INSTANCE_NAME.")
    recipients = serializers.ListField(
        child=serializers.DictField(), required=False, max_length=1000,
        help_text='[{"phone": "+5511987654321", "name": "Ana", "date": "12 May"}]: contacts made or merged by phone.',
    )
    audience = serializers.CharField(required=False, max_length=64, help_text="A tag: everyone with it when a run starts.")
    saved_filter = serializers.CharField(
        required=False, max_length=64,
        help_text="A saved filter's name (admin: Saved filters): everyone it matches when a run starts.",
    )
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True, help_text="First start; now when empty.")
    recurrence = RecurrenceSerializer(required=False, allow_null=True)
    rate_per_minute = serializers.IntegerField(required=False, min_value=1, max_value=100000, default=20)
    time_zone = serializers.CharField(required=False, default="UTC", max_length=64)
    quiet_hours = QuietHoursSerializer(required=False, allow_null=True)
    valid_for_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=315360000)
    draft = serializers.BooleanField(required=False, default=False, help_text="Store it without launching it.")
    # Checked by create_campaign with the messages' own rule (messaging.callback_urls.clean_callback_url).
    callback_url = serializers.CharField(
        required=False, allow_blank=True,
        help_text="http(s) address each status change of every run's messages (sent, delivered, read, failed, "
                  "expired) is POSTed to, signed with the API client's callback secret (X-Console-Signature), as "
                  "for POST /messages. API clients only.",
    )


class RunSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    total = serializers.IntegerField(help_text="Recipients considered: messages made plus skipped.")
    messages = serializers.IntegerField()
    waiting = serializers.IntegerField(help_text="Stored, waiting for their send time.")
    held = serializers.IntegerField(help_text="Held by a pause.")
    queued = serializers.IntegerField(help_text="Released: queued, sending or retrying.")
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField(help_text="Of those sent, delivered to the phone (from WhatsApp's receipts).")
    read = serializers.IntegerField(help_text="Of those delivered, read (or played) by the recipient.")
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skipped_reasons = serializers.DictField(child=serializers.IntegerField())
    messages_url = serializers.CharField(help_text="GET /messages filtered to this run.")


class CampaignSerializer(serializers.ModelSerializer):
    success = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=CampaignStatus.choices)
    audience = serializers.SlugRelatedField(slug_field="name", read_only=True)
    saved_filter = serializers.SlugRelatedField(slug_field="name", read_only=True)
    recurrence = serializers.SerializerMethodField()
    runs = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "success", "id", "name", "status", "instance", "text", "audience", "saved_filter", "scheduled_at",
            "next_run_at",
            "recurrence", "rate_per_minute", "time_zone", "quiet_hours_start", "quiet_hours_end",
            "valid_for_seconds", "callback_url", "created_at", "runs",
        ]

    def get_success(self, campaign) -> bool:
        return True

    def get_recurrence(self, campaign) -> str | None:
        return str(campaign.recurrence.scheduler) if campaign.recurrence and campaign.recurrence.scheduler else None

    @extend_schema_field(RunSerializer(many=True))
    def get_runs(self, campaign):
        from campaigns import selectors

        runs = []
        for run in selectors.run_progress(campaign):
            run = {key: value for key, value in run.items() if key != "run"}
            run["messages_url"] = f"/messages?source={run.pop('source')}"
            runs.append(run)
        return RunSerializer(runs, many=True).data


class ContactImportUploadSerializer(serializers.Serializer):
    """The multipart form of POST /contacts/import (a text/csv body is the file itself)."""

    file = serializers.FileField(help_text="CSV with a header row: phone (required), name, tags (a;b), opted_out "
                                           "(yes/no), and any other column as a template field.")


class RejectedRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="The line in the file (the header is line 1).")
    phone = serializers.CharField()
    reason = serializers.CharField()


class ContactImportSerializer(serializers.ModelSerializer):
    success = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ImportStatus.choices)
    columns = serializers.SerializerMethodField()
    rejected_rows = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = ContactImport
        fields = [
            "success", "id", "status", "file_name", "tag", "total_rows", "accepted", "rejected", "duplicates",
            "processed_rows", "columns", "rejected_rows", "created_at", "finished_at", "status_url",
        ]
        extra_kwargs = {
            "accepted": {"help_text": "Contacts in the file (after duplicates are merged)."},
            "processed_rows": {"help_text": "Contacts written so far; the import is done at `accepted`."},
        }

    def get_success(self, upload) -> bool:
        return True

    def get_columns(self, upload) -> list[str]:
        return upload.report.get("columns", [])

    @extend_schema_field(RejectedRowSerializer(many=True))
    def get_rejected_rows(self, upload):
        return upload.report.get("rejected_rows", [])

    def get_status_url(self, upload) -> str:
        return f"/contacts/import/{upload.pk}"
