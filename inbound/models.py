"""What Evolution API tells the console after a send, and what customers write back.

Evolution retries webhooks, so every table that a webhook fills has a unique key that makes a retry the same row
(a constraint, never check-then-insert). A contact's messages wait in a ``Batch`` until the contact is quiet; the
batch's state changes are conditional UPDATEs on ``BatchQuerySet``, so two workers never both process one.
"""
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class InstanceWebhook(models.Model):
    """The console's webhook on one Evolution instance: the secret Evolution sends back, and the instance's
    connection state as its last ``connection.update`` said."""

    instance = models.CharField(max_length=64, unique=True)
    secret = models.CharField(max_length=128)
    url = models.CharField(max_length=500, blank=True, default="")
    registered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    state = models.CharField(max_length=16, blank=True, default="", help_text="open, close, connecting, refused")
    state_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["instance"]
        permissions = [("register_instancewebhook", "Can register the console's webhook on Evolution API")]

    def __str__(self):
        return f"webhook of {self.instance}"


class WebhookEvent(models.Model):
    """One event as Evolution posted it, for audit and replay. ``dedupe_key`` makes its retries one row."""

    instance = models.CharField(max_length=64)
    event = models.CharField(max_length=64)
    dedupe_key = models.CharField(max_length=64, unique=True)
    body = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["instance", "event", "received_at"], name="webhook_instance_event"),
            # The tick's scan for events whose task never ran.
            models.Index(fields=["received_at"], name="webhook_unprocessed", condition=Q(processed_at__isnull=True)),
        ]

    def __str__(self):
        return f"{self.event} for {self.instance} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class Receipt(models.Model):
    """A delivery or read receipt (``messages.update``). Kept even when no sent message has its id yet: the send
    may not have saved it, and applies it once it does (inbound.receivers)."""

    instance = models.CharField(max_length=64)
    evolution_message_id = models.CharField(max_length=128)
    status = models.CharField(max_length=16)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "evolution_message_id", "status"], name="receipt_once"),
        ]

    def __str__(self):
        return f"{self.status} for {self.evolution_message_id}"


class BatchStatus(models.TextChoices):
    COLLECTING = "collecting", "Collecting"  # the contact may still be typing; due_at moves with each message
    PROCESSING = "processing", "Processing"  # claimed by one task
    DONE = "done", "Done"


class BatchQuerySet(models.QuerySet):
    def claim(self, pk: int, *, now) -> bool:
        """Collecting and due -> processing. True only for the one caller that moved it. A message being
        attached holds the row's lock, so this waits for it and then sees the later due_at."""
        return bool(
            self.filter(pk=pk, status=BatchStatus.COLLECTING, due_at__lte=now).update(
                status=BatchStatus.PROCESSING, claimed_at=now
            )
        )

    def finish(self, pk: int, *, outcome: str) -> bool:
        return bool(
            self.filter(pk=pk, status=BatchStatus.PROCESSING).update(
                status=BatchStatus.DONE, processed_at=timezone.now(), outcome=outcome[:2000]
            )
        )

    def release_stale(self, *, claimed_before) -> int:
        """Processing batches whose worker vanished -> collecting, due now (their actions are idempotent)."""
        return self.filter(status=BatchStatus.PROCESSING, claimed_at__lt=claimed_before).update(
            status=BatchStatus.COLLECTING, due_at=timezone.now(), claimed_at=None
        )

    def extend(self, pk: int, *, due_at, now) -> int:
        return self.filter(pk=pk, status=BatchStatus.COLLECTING).update(
            due_at=due_at, last_message_at=now, message_count=F("message_count") + 1
        )


class Batch(models.Model):
    """A contact's messages on one instance, from the first until they were quiet for INBOUND_DEBOUNCE_SECONDS."""

    instance = models.CharField(max_length=64)
    phone = models.CharField(max_length=20)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.COLLECTING)
    opened_at = models.DateTimeField(default=timezone.now)
    last_message_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    message_count = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, default="")

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name_plural = "batches"
        constraints = [
            # At most one open batch per contact and instance: two messages racing to open one meet here.
            models.UniqueConstraint(
                fields=["instance", "phone"], condition=Q(status="collecting"), name="batch_one_collecting"
            ),
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="batch_status_due")]

    def __str__(self):
        return f"batch #{self.pk} of {self.phone} ({self.status}, {self.message_count} messages)"


class InboundMessage(models.Model):
    """What a contact wrote. One row per WhatsApp message id and instance, however often Evolution posts it."""

    instance = models.CharField(max_length=64)
    whatsapp_id = models.CharField(max_length=128)
    phone = models.CharField(max_length=20, help_text="E.164")
    remote_jid = models.CharField(max_length=128)
    push_name = models.CharField(max_length=200, blank=True, default="")
    message_type = models.CharField(max_length=64, blank=True, default="")
    text = models.TextField(blank=True, default="", help_text="The text, or a media message's caption")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="WhatsApp's time (messageTimestamp)")
    received_at = models.DateTimeField(default=timezone.now)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    event = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "whatsapp_id"], name="inbound_once_per_whatsapp_id"),
        ]
        indexes = [models.Index(fields=["phone", "received_at"], name="inbound_phone_received")]

    def __str__(self):
        return f"from {self.phone}: {self.text[:40]}"


class KeywordAction(models.TextChoices):
    OPT_OUT = "opt_out", "Opt the contact out (and answer)"
    REPLY = "reply", "Answer with a text"


class KeywordRule(models.Model):
    """A word that, written alone as a message, makes the console act. Compared without case, accents or
    surrounding punctuation ("stop", "Stop!", " STOP ")."""

    keyword = models.CharField(max_length=64, unique=True)
    action = models.CharField(max_length=16, choices=KeywordAction.choices, default=KeywordAction.OPT_OUT)
    reply_text = models.TextField(blank=True, default="", help_text="Sent back to the contact; empty sends nothing")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["keyword"]

    def __str__(self):
        return self.keyword

    def save(self, *args, **kwargs):
        from inbound.keywords import normalize_keyword

        self.keyword = normalize_keyword(self.keyword)
        super().save(*args, **kwargs)


class OptOut(models.Model):
    """A phone that asked to hear no more. Campaigns skip it (``inbound.selectors.is_opted_out``)."""

    phone = models.CharField(max_length=20, unique=True, help_text="E.164")
    instance = models.CharField(max_length=64, blank=True, default="")
    keyword = models.CharField(max_length=64, blank=True, default="")
    opted_out_at = models.DateTimeField(default=timezone.now)
    message = models.ForeignKey(InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-opted_out_at"]
        verbose_name = "opt-out"

    def __str__(self):
        return f"{self.phone} opted out ({self.keyword or 'by hand'})"
