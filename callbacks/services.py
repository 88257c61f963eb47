"""Status callbacks: record each status change of a message with a ``callback_url``, then POST it, signed.

``record_status_change`` runs when messaging announces a change (messaging.signals.announce_status, after its
commit): one INSERT and a task published, never the HTTP call, so a slow or dead endpoint never slows sending.
``deliver_pending`` (the task ``deliver_status_callbacks``) POSTs a message's deliveries one at a time in the order
the statuses happened; a delivery that fails with a 5xx, 408, 429 or a network error is retried with exponential
backoff and holds back the later ones; a 4xx, a URL whose host resolves to a private address (callbacks.addresses),
or CALLBACK_MAX_ATTEMPTS spent gives it up and the next one goes.

The body is JSON ``{"id", "status", "at", "phone", "instance", "error"}``; ``X-Console-Signature:
sha256=<hex HMAC-SHA256 of the body>`` keyed by the sending API client's callback secret (access.ApiClient).
"""
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from access.models import ApiClient
from callbacks import addresses
from callbacks.models import STATUS_RANK, CallbackAttempt, CallbackDelivery, DeliveryState
from messaging.models import OutboundMessage

log = logging.getLogger("callbacks")

SIGNATURE_HEADER = "X-Console-Signature"
PERMANENT_HTTP_ERRORS = range(400, 500)
RETRYABLE_4XX = (408, 429)  # the endpoint may take it later
MAX_RESEND_HOPS = 20  # a resend of a resend of ...: how far back the sender is looked for


def sign(body: bytes, secret: str) -> str:
    """The X-Console-Signature value of ``body``: what an integrator computes to check a callback is ours."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def record_status_change(*, message_id: int, status: str, at, callback_url: str) -> bool:
    """The delivery row for this change (once per message and status), and its task after commit. True if new."""
    try:
        with transaction.atomic():
            CallbackDelivery.objects.create(message_id=message_id, status=status, rank=STATUS_RANK.get(status, 1),
                                            at=at, url=callback_url, next_attempt_at=timezone.now())
        created = True
    except IntegrityError:  # announced twice: told once
        created = False
    from callbacks import tasks

    transaction.on_commit(lambda: tasks.deliver_status_callbacks.delay(message_id))
    log.info("message=%s status=%s callback recorded url=%s", message_id, status, callback_url)
    return created


def retry_delay(attempt: int) -> float:
    """Seconds before the try after failed attempt ``attempt``: CALLBACK_RETRY_DELAY_SECONDS x 2^(attempt-1),
    at most CALLBACK_RETRY_MAX_DELAY_SECONDS."""
    delay = settings.CALLBACK_RETRY_DELAY_SECONDS * 2 ** min(attempt - 1, 32)
    return min(delay, settings.CALLBACK_RETRY_MAX_DELAY_SECONDS)


def deliver_pending(*, message_id: int) -> float | None:
    """POST this message's waiting deliveries in order, until one has to wait. Returns the seconds until it may be
    tried again (or until another worker's claim is done), or None when nothing waits."""
    while True:
        head = (CallbackDelivery.objects.filter(message_id=message_id, state=DeliveryState.PENDING)
                .order_by("rank", "id").first())
        if head is None:
            return None
        now = timezone.now()
        if head.next_attempt_at > now:
            return (head.next_attempt_at - now).total_seconds()
        claim = timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS * 2 + 5)
        claimed = CallbackDelivery.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            pk=head.pk, state=DeliveryState.PENDING, attempt_count=head.attempt_count,
        ).update(claimed_until=now + claim, attempt_count=F("attempt_count") + 1)
        if not claimed:
            return 1.0  # another worker is POSTing it; look again once it is done
        _attempt(head, number=head.attempt_count + 1)


def _attempt(delivery: CallbackDelivery, *, number: int) -> None:
    message = OutboundMessage.objects.filter(pk=delivery.message_id).values(
        "phone", "instance", "last_error", "created_by_id", "resend_of_id", "sent_at", "finished_at").first()
    body = (delivery.body or _body_of(delivery, message)).encode()
    secret = signing_secret(message)
    attempt = CallbackAttempt.objects.create(delivery=delivery, number=number)
    started = time.monotonic()
    status_code, error, retryable = None, "", False
    if not secret:
        error = "The message was not sent by an API client: there is no callback secret to sign with."
    else:
        try:
            answer = addresses.post(
                delivery.url, content=body, timeout=settings.CALLBACK_TIMEOUT_SECONDS,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret),
                         "User-Agent": "whatsapp-console-callbacks"},
            )
        except addresses.PrivateAddress as refused:  # the URL's owner must change it: retrying cannot help
            error = str(refused)
        except httpx.HTTPError as problem:
            error, retryable = f"{type(problem).__name__}: {problem}"[:1000], True
        else:
            status_code = answer.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {answer.text[:200]}"
                retryable = status_code not in PERMANENT_HTTP_ERRORS or status_code in RETRYABLE_4XX
    now = timezone.now()
    CallbackAttempt.objects.filter(pk=attempt.pk).update(
        finished_at=now, duration_ms=int((time.monotonic() - started) * 1000), http_status=status_code, error=error,
    )
    mine = CallbackDelivery.objects.filter(pk=delivery.pk, state=DeliveryState.PENDING, attempt_count=number)
    if not error:
        mine.update(state=DeliveryState.DELIVERED, finished_at=now, claimed_until=None, last_error="")
        log.info("message=%s status=%s callback attempt=%s delivered http=%s", delivery.message_id, delivery.status,
                 number, status_code)
    elif retryable and number < settings.CALLBACK_MAX_ATTEMPTS:
        delay = retry_delay(number)
        mine.update(next_attempt_at=now + timedelta(seconds=delay), claimed_until=None, last_error=error)
        log.warning("message=%s status=%s callback attempt=%s failed: %s; retrying in %ss", delivery.message_id,
                    delivery.status, number, error, delay)
    else:
        mine.update(state=DeliveryState.GAVE_UP, finished_at=now, claimed_until=None, last_error=error)
        log.error("message=%s status=%s callback attempt=%s failed for good: %s", delivery.message_id,
                  delivery.status, number, error)


def signing_secret(message: dict) -> str | None:
    """The callback secret of the API client the message is for: its sender's, or, for an operator's resend
    (which keeps the original's callback_url), the sender's of the message it resends. None when no client."""
    for _ in range(MAX_RESEND_HOPS):
        secret = ApiClient.objects.filter(user_id=message["created_by_id"]).values_list("callback_secret", flat=True).first()
        if secret or message["resend_of_id"] is None:
            return secret
        message = OutboundMessage.objects.filter(pk=message["resend_of_id"]).values("created_by_id", "resend_of_id").first()
        if message is None:  # the original was purged: nobody to sign for
            return None
    return None


def _body_of(delivery: CallbackDelivery, message: dict) -> str:
    """The JSON of this change, made once (every retry sends the same bytes, so the same signature). Its "at" is
    the time the message row holds (sent_at, finished_at; a receipt's own time), not when it was announced."""
    at = {"sent": message["sent_at"], "failed": message["finished_at"], "expired": message["finished_at"]}.get(
        delivery.status) or delivery.at
    payload = {
        "id": delivery.message_id,
        "status": delivery.status,
        "at": at.isoformat().replace("+00:00", "Z"),
        "phone": message["phone"],
        "instance": message["instance"],
    }
    if delivery.status == "failed":
        payload["error"] = message["last_error"]
    body = json.dumps(payload, separators=(",", ":"))
    CallbackDelivery.objects.filter(pk=delivery.pk, body="").update(body=body, at=at)
    return CallbackDelivery.objects.filter(pk=delivery.pk).values_list("body", flat=True).first()


def wake_due_deliveries(*, limit: int = 500) -> int:
    """Beat's safety net: publish the task again for messages whose due delivery has no task coming (the broker
    lost it, or a worker died holding a claim). Returns how many messages it woke."""
    now = timezone.now()
    overdue = now - timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS * 2 + 10)
    due = (CallbackDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=overdue)
           .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
           .values_list("message_id", flat=True).distinct()[:limit])
    from callbacks import tasks

    woken = list(due)
    for message_id in woken:
        tasks.deliver_status_callbacks.delay(message_id)
    return len(woken)


def purge_old_records(*, batch_size: int = 5000, pause: float = 0.0) -> dict[str, int]:
    """Callbacks' part of beat's nightly retention (``retention_due``), with messaging's MESSAGING_RETENTION_DAYS:
    they are records of messages, and go with them when those are purged. Attempts that started, and finished
    (delivered or given up) callbacks that finished, before then; a callback still being retried is kept."""
    if not settings.MESSAGING_RETENTION_DAYS:
        return {}
    from messaging.maintenance import delete_in_batches

    cutoff = timezone.now() - timedelta(days=settings.MESSAGING_RETENTION_DAYS)
    return {
        "callback_attempts": delete_in_batches(
            CallbackAttempt, CallbackAttempt.objects.filter(started_at__lt=cutoff), batch_size, pause),
        "callbacks": delete_in_batches(
            CallbackDelivery, CallbackDelivery.objects.exclude(state=DeliveryState.PENDING).filter(finished_at__lt=cutoff),
            batch_size, pause),
    }
