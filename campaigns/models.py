"""Contacts, their tags (the audiences), campaigns and their runs.

A run's messages are ordinary ``OutboundMessage`` rows made through ``messaging.services``; they point back here
only by their ``source`` string ("campaign:<id>:run:<n>"), so messaging never imports this app. Like messages,
every state change of a campaign or run is a conditional UPDATE (``WHERE status IN ...``): two workers, two beats
or an operator and beat can never both move the same row.
"""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact
from django.utils import timezone


class Tag(models.Model):
    """A label on contacts; a campaign's audience is everyone with its tag."""

    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Contact(models.Model):
    phone = models.CharField(max_length=20, unique=True, help_text="E.164, e.g. +5511987654321")
    name = models.CharField(max_length=200, blank=True, default="")
    # Free fields for templates: {"date": "12 May", "city": "Lima"} fills {date} and {city}.
    fields = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts")
    # Once set, no campaign writes to this contact again, whichever way the opt-out arrived.
    opted_out_at = models.DateTimeField(null=True, blank=True)
    opt_out_source = models.CharField(max_length=32, blank=True, default="", help_text='"admin", "csv", "api", "reply"')
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["phone"]

    def __str__(self):
        return f"{self.name} ({self.phone})" if self.name else self.phone


class SavedFilter(models.Model):
    """An audience by rule rather than by tag: the contacts that have all of its tags, each of its field values
    (``{"city": "Lima"}``) and were made after ``created_after``, as they are when a run starts. A run skips the
    opted-out among them as it does any recipient."""

    name = models.CharField(max_length=64, unique=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="saved_filters", help_text="Contacts with all of these.")
    fields = models.JSONField(default=dict, blank=True, help_text='Field values contacts must have, e.g. {"city": "Lima"}.')
    created_after = models.DateTimeField(null=True, blank=True, help_text="Only contacts made after this moment.")

    class Meta:
        ordering = ["name"]
        verbose_name = "saved filter"

    def __str__(self):
        return self.name

    def clean(self):
        if not isinstance(self.fields, dict) or not all(
            isinstance(key, str) and key and isinstance(value, str) for key, value in self.fields.items()
        ):
            raise ValidationError({"fields": ['An object of field names to text values, e.g. {"city": "Lima"}.']})

    def contacts(self):
        """Its contacts now. A field's value compares as text, as imports store them."""
        contacts = Contact.objects.all()
        for tag_id in self.tags.values_list("pk", flat=True):
            contacts = contacts.filter(tags=tag_id)  # one join per tag: all of them, not any
        for key, value in (self.fields or {}).items():
            contacts = contacts.filter(Exact(KeyTextTransform(key, "fields"), str(value)))
        if self.created_after is not None:
            contacts = contacts.filter(created_at__gt=self.created_after)
        return contacts


class ImportStatus(models.TextChoices):
    PREVIEW = "preview", "Preview (nothing imported yet)"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Importing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ContactImport(models.Model):
    """One CSV upload: previewed first, imported in the background on request, with its progress and report."""

    file_name = models.CharField(max_length=255, blank=True, default="")
    csv_text = models.TextField(help_text="The uploaded file, kept until it is imported.")
    tag = models.CharField(max_length=64, blank=True, default="", help_text="A tag given to every imported contact.")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PREVIEW)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0, help_text="Rows merged into an earlier row with the same phone.")
    # {"columns": [...], "rejected_rows": [{"row": 3, "phone": "...", "reason": "..."}], "sample": [...]}
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "contact import"

    def __str__(self):
        return f"import #{self.pk} {self.file_name}".strip()


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


# A campaign in these may still send or start a run.
ACTIVE_CAMPAIGN_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    instance = models.CharField(max_length=64, help_text="Evolution API instance that sends it")
    text = models.TextField(help_text="A template: {name}, {phone} and any contact field, e.g. {date}.")
    audience = models.ForeignKey(
        Tag, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns",
        help_text="Everyone with this tag, when the run starts.",
    )
    saved_filter = models.ForeignKey(
        SavedFilter, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns",
        help_text="Everyone the saved filter matches, when the run starts.",
    )
    recipients = models.ManyToManyField(Contact, blank=True, related_name="campaigns", help_text="Explicit recipients.")
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="First start; empty starts on launch.")
    # The database is the schedule: beat's due-check starts a run when this has passed (see services).
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    recurrence = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="campaign",
        help_text="Its crontab or interval (edited under Periodic tasks) says when the next run is due.",
    )
    rate_per_minute = models.PositiveIntegerField(default=20, help_text="At most the instance's own pace.")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="For the quiet hours, e.g. America/Sao_Paulo.")
    quiet_hours_start = models.TimeField(null=True, blank=True, help_text="No sends from this time ...")
    quiet_hours_end = models.TimeField(null=True, blank=True, help_text="... until this time (may cross midnight).")
    valid_for_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages of a run not sent this long after it starts expire, never sent."
    )
    # Each run's messages carry it: their status changes are POSTed there, signed (callbacks/). API clients only.
    callback_url = models.URLField(max_length=500, blank=True, default="", db_default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_run_at"], name="campaign_status_next_run")]
        permissions = [
            ("launch_campaign", "Can launch a campaign"),
            ("control_campaign", "Can pause, resume or cancel a campaign"),
        ]

    def __str__(self):
        return self.name

    @property
    def source_prefix(self) -> str:
        return source_prefix(self.pk)


def source_prefix(campaign_id: int) -> str:
    """What every message of the campaign's runs has its ``source`` start with."""
    return f"campaign:{campaign_id}:"


class RunStatus(models.TextChoices):
    PREPARING = "preparing", "Preparing"  # its messages are being created
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class CampaignRun(models.Model):
    """One sending of a campaign to its audience: one message per recipient, made once (see services)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PREPARING)
    due_at = models.DateTimeField(help_text="The occurrence this run is for.")
    started_at = models.DateTimeField(default=timezone.now)
    prepared_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    recipients = models.PositiveIntegerField(default=0, help_text="Contacts in the audience when it started.")
    created = models.PositiveIntegerField(default=0, help_text="Messages made for this run.")
    skipped = models.JSONField(default=dict, blank=True, help_text="Contacts not written to, by reason.")

    class Meta:
        ordering = ["campaign_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="run_unique_number"),
            models.UniqueConstraint(fields=["campaign", "due_at"], name="run_unique_occurrence"),
        ]

    def __str__(self):
        return f"{self.campaign} run {self.number}"

    @property
    def source(self) -> str:
        return run_source(self.campaign_id, self.number)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def run_source(campaign_id: int, number: int) -> str:
    """The ``OutboundMessage.source`` of a run's messages: counts per run are one indexed GROUP BY."""
    return f"{source_prefix(campaign_id)}run:{number}"
