"""Status callbacks to integrators: one delivery row per status change of a message with a ``callback_url``, and
one attempt row per POST.

The delivery row is written when messaging announces the change (after its commit), before any network call; a
task then POSTs it (callbacks/services.py). A message's deliveries go out one at a time, in the order its statuses
happened, so an endpoint hears "sent" before "delivered" even when "sent" needed retries.
"""
from django.db import models
from django.utils import timezone

from messaging.models import OutboundMessage

# The order a message's statuses happen in: a retried "sent" holds back "delivered" and "read".
STATUS_RANK = {"sent": 1, "failed": 1, "expired": 1, "delivered": 2, "read": 3}


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting (first try or a retry)"
    DELIVERED = "delivered", "Delivered"
    GAVE_UP = "gave_up", "Given up"


class CallbackDelivery(models.Model):
    """One status change to tell one ``callback_url``: POSTed until the endpoint answers 2xx, a 4xx says it never
    will, or CALLBACK_MAX_ATTEMPTS run out."""

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="callback_deliveries")
    status = models.CharField(max_length=16, help_text="sent, delivered, read, failed or expired")
    rank = models.PositiveSmallIntegerField(help_text="Where this status comes in a message's life (STATUS_RANK).")
    at = models.DateTimeField(help_text="When the message reached this status.")
    url = models.URLField(max_length=500)
    body = models.TextField(blank=True, default="", help_text="The JSON POSTed, exactly as signed; made at the first try.")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker POSTing it holds it until then (a conditional UPDATE claims it); a crashed worker's claim lapses.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "status callback"
        constraints = [
            # messaging may announce a change twice (a task delivered twice): it is told once.
            models.UniqueConstraint(fields=["message", "status"], name="callback_once_per_status"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="callback_pending_due",
                         condition=models.Q(state="pending")),
        ]

    def __str__(self):
        return f"message {self.message_id} {self.status} -> {self.url}"


class CallbackAttempt(models.Model):
    """One POST of a delivery, written before the call and finished after it."""

    delivery = models.ForeignKey(CallbackDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="callback_attempt_once")]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery}"
