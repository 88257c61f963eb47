"""Outbound messages and their send attempts.

The database is the queue of record: a message row exists before anything is published to the broker, and every
state change is a conditional UPDATE (``WHERE status IN ...``) so that two workers on two hosts can never both
send the same message. The transitions of both tables live on their querysets (``OutboundMessageQuerySet``,
``SendAttemptQuerySet``); nothing else writes ``status`` or ``outcome``.
"""
import functools
import operator
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.celery import new_task_id
from config.rows import convert_row, row_converters


class MessageStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"  # not sent by its expires_at; never sent


FINAL_STATUSES = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.CANCELLED, MessageStatus.EXPIRED)
CANCELLABLE_STATUSES = (MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.RETRYING)
# A retry may be picked up this much before its due time (clock skew between hosts, timer jitter).
RETRY_EARLY_TOLERANCE = timedelta(seconds=1)


class Priority(models.TextChoices):
    """Which queue a message's send goes through: one a person waits for goes ahead of mass sends."""

    TRANSACTIONAL = "transactional", "Transactional"  # a single send: the API, the admin, a resend
    BULK = "bulk", "Bulk"  # bulk requests, campaigns, scheduled releases


_COPY_AS_IS = {
    "AutoField", "BigAutoField", "CharField", "TextField", "DateTimeField", "ForeignKey", "IntegerField",
    "PositiveIntegerField", "PositiveSmallIntegerField", "SmallIntegerField", "BigIntegerField", "BooleanField",
}


def _insert_one(obj, *, using: str) -> None:
    """INSERT one new row (its pk set) as ``save(force_insert=True)`` does, with the statement's text made once
    per process: Django compiling the 25-column INSERT cost ~0.8 ms of CPU per POST /messages, several times the
    statement's own round trip (and the attempt's, once per send). Each value goes through its field's
    ``get_db_prep_save`` as in a save; these models have no ``auto_now`` fields and no save signals, so nothing
    else of save() applies."""
    connection = connections[using]
    fields, sql = _single_insert(connection.vendor, connection.alias, obj._meta.label)
    values = [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding, obj._state.db = False, using


@functools.cache
def _single_insert(vendor: str, alias: str, label: str) -> tuple[list, str]:
    """The columns and text of ``_insert_one``'s statement for one model on one database."""
    from django.apps import apps

    meta = apps.get_model(label)._meta
    quote = connections[alias].ops.quote_name
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    return fields, (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)})"
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {quote(meta.pk.column)}"
    )


class _ClaimStatements(NamedTuple):
    claim: str  # claim_for_sending's UPDATE ... RETURNING the message's columns
    claim_and_start: str  # the same, with the attempt's INSERT in a WITH
    attempt_fields: list  # the attempt's columns whose values come from Python
    attnames: list[str]  # the returned row's attribute names
    converters: list  # config.rows.row_converters of the returned row


@functools.cache
def _claim_statements(alias: str) -> _ClaimStatements:
    """The claim's statements, and what reading its row takes, made once per process: building them per send
    was a fifth of the claim's Python."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta, attempt_meta = OutboundMessage._meta, SendAttempt._meta
    claim = (
        f"UPDATE {quote(meta.db_table)} SET status = %s, attempt_count = attempt_count + 1, updated_at = %s"
        f" WHERE id = %s AND (status = %s OR (status = %s AND next_attempt_at <= %s))"
        f" AND (expires_at IS NULL OR expires_at > %s)"
        f" RETURNING {', '.join(quote(field.column) for field in meta.concrete_fields)}"
    )
    attempt_fields = [field for field in attempt_meta.concrete_fields if field.attname not in ("id", "message_id", "number")]
    columns = ", ".join(quote(name) for name in ["message_id", "number", *(field.column for field in attempt_fields)])
    claim_and_start = (
        f"WITH claimed AS ({claim}), started AS (INSERT INTO {quote(attempt_meta.db_table)} ({columns})"
        f" SELECT claimed.id, claimed.attempt_count, {', '.join(['%s'] * len(attempt_fields))} FROM claimed"
        f" WHERE claimed.instance = ANY(%s) RETURNING id) SELECT claimed.*, (SELECT id FROM started) FROM claimed"
    )
    return _ClaimStatements(
        claim, claim_and_start, attempt_fields, [field.attname for field in meta.concrete_fields],
        row_converters(connection, [(field, meta.db_table) for field in meta.concrete_fields]),
    )


class OutboundMessageQuerySet(models.QuerySet):
    """State transitions. Each returns True only for the caller that actually moved the row."""

    def claim_for_sending(self, pk: int) -> "OutboundMessage | None":
        """Move a queued (or due retrying), unexpired message to sending and return it as it now is; None when
        it is not claimable (another worker has it, it is final, not yet due or overdue).

        One ``UPDATE ... RETURNING`` statement, where an ORM update and a get were two round trips per send.
        """
        connection = connections[self.db]
        with connection.cursor() as cursor:
            cursor.execute(_claim_statements(connection.alias).claim, self._claim_params(pk))
            row = cursor.fetchone()
        return None if row is None else self._claimed(row, connection)

    def claim_and_start(self, pk: int, *, task_id: str, worker: str, instances) -> "tuple[OutboundMessage | None, SendAttempt | None]":
        """``claim_for_sending``, and in the same statement the attempt's ``started`` row, when the message's
        instance is one of ``instances``: those nothing may hold back (not paced, not paused), so the attempt
        is certain once the claim is. Otherwise (and on SQLite) the attempt is None: the caller looks at the
        instance first and starts the attempt itself.

        One round trip and one commit where the claim and the attempt's INSERT were two: with PostgreSQL on the
        workers' cores, a write statement's own cost (its commit, parse and plan) is several times its row's.
        """
        connection = connections[self.db]
        if not instances or connection.vendor != "postgresql":
            return self.claim_for_sending(pk), None
        statements = _claim_statements(connection.alias)
        attempt = SendAttempt(task_id=task_id, worker=worker)
        params = [*self._claim_params(pk), *(field.get_db_prep_save(getattr(attempt, field.attname), connection)
                                             for field in statements.attempt_fields), list(instances)]
        with connection.cursor() as cursor:
            cursor.execute(statements.claim_and_start, params)
            row = cursor.fetchone()
        if row is None:
            return None, None
        message = self._claimed(row[:-1], connection)
        if row[-1] is None:
            return message, None
        attempt.pk, attempt.message, attempt.number = row[-1], message, message.attempt_count
        attempt._state.adding, attempt._state.db = False, self.db
        return message, attempt

    @staticmethod
    def _claim_params(pk: int) -> list:
        now = timezone.now()
        return [MessageStatus.SENDING, now, pk, MessageStatus.QUEUED, MessageStatus.RETRYING,
                now + RETRY_EARLY_TOLERANCE, now]

    def _claimed(self, row, connection) -> "OutboundMessage":
        statements = _claim_statements(connection.alias)
        return self.model.from_db(self.db, statements.attnames, convert_row(row, statements.converters, connection))

    def defer(self, pk: int, *, attempt: int, until) -> bool:
        """Undo a claim that did not send (the instance is paced or paused): back to queued or retrying, the
        attempt not counted, not to be claimed again before ``until``."""
        return bool(
            self.filter(pk=pk, status=MessageStatus.SENDING, attempt_count=attempt).update(
                status=Case(When(attempt_count=1, then=Value(MessageStatus.QUEUED)), default=Value(MessageStatus.RETRYING)),
                attempt_count=F("attempt_count") - 1,
                next_attempt_at=until,
                updated_at=timezone.now(),
            )
        )

    def pause_attempt(self, pk: int, *, attempt: int, error_kind: str, error: str, until) -> bool:
        """Sending -> retrying after an attempt failed because its instance is disconnected (now paused): the
        attempt row stays as the trace, but it does not count against the retry budget (``uncounted_attempts``),
        and the message is not claimed again before ``until``, when the pause is looked at again."""
        return bool(
            self.filter(pk=pk, status=MessageStatus.SENDING, attempt_count=attempt).update(
                status=MessageStatus.RETRYING,
                uncounted_attempts=F("uncounted_attempts") + 1,
                last_error_kind=error_kind,
                last_error=error,
                next_attempt_at=until,
                updated_at=timezone.now(),
            )
        )

    # The outcome of a send is written only by the attempt that still owns the claim: a worker the sweeper gave up
    # on (its attempt was marked interrupted and a newer one claimed the row) must not overwrite the newer state.

    def mark_sent(self, pk: int, *, attempt: "SendAttempt", evolution_message_id: str, remote_jid: str,
                  reconciled: bool = False, at=None) -> bool:
        """The attempt sent the message (or found it already sent: ``reconciled``): both rows say so.

        On PostgreSQL one statement (the attempt's UPDATE in a WITH), atomic on its own: the two ORM updates in a
        transaction were four round trips (BEGIN, UPDATE, UPDATE, COMMIT) of a send's eight.
        """
        now = at or timezone.now()
        message_values = dict(
            status=MessageStatus.SENT, evolution_message_id=evolution_message_id, remote_jid=remote_jid,
            last_error="", last_error_kind="", next_attempt_at=None, sent_at=now, finished_at=now, updated_at=now,
        )
        attempt_values = dict(
            outcome=AttemptOutcome.SENT, finished_at=now, http_status=None if reconciled else 201,
            evolution_message_id=evolution_message_id, reconciled=reconciled,
        )
        connection = connections[self.db]
        if connection.vendor != "postgresql":  # SQLite has no UPDATE inside WITH
            with transaction.atomic(using=self.db):
                SendAttempt.objects.filter(pk=attempt.pk, outcome=AttemptOutcome.STARTED).update(**attempt_values)
                return bool(self.filter(pk=pk, status=MessageStatus.SENDING, attempt_count=attempt.number)
                            .update(**message_values))
        quote = connection.ops.quote_name

        def assignments(values):
            return ", ".join(f"{quote(column)} = %s" for column in values)

        sql = (
            f"WITH finished AS (UPDATE {quote(SendAttempt._meta.db_table)} SET {assignments(attempt_values)}"
            f" WHERE id = %s AND outcome = %s)"
            f" UPDATE {quote(self.model._meta.db_table)} SET {assignments(message_values)}"
            f" WHERE id = %s AND status = %s AND attempt_count = %s"
        )
        params = [*attempt_values.values(), attempt.pk, AttemptOutcome.STARTED,
                  *message_values.values(), pk, MessageStatus.SENDING, attempt.number]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount == 1

    # Receipts (Evolution's messages.update) only ever move a message forward: a read implies delivered, and a
    # delivery receipt after the read changes nothing. They do not touch ``status``: ``sent`` stays the send's
    # outcome, so resends, retries and the task states are as before.

    def record_delivered(self, *, instance: str, evolution_message_id: str, at) -> bool:
        return bool(
            self.filter(instance=instance, evolution_message_id=evolution_message_id, delivered_at__isnull=True)
            .exclude(evolution_message_id="")
            .update(delivered_at=at)
        )

    def record_read(self, *, instance: str, evolution_message_id: str, at) -> bool:
        return bool(
            self.filter(instance=instance, evolution_message_id=evolution_message_id, read_at__isnull=True)
            .exclude(evolution_message_id="")
            .update(read_at=at, delivered_at=Coalesce("delivered_at", Value(at)))
        )

    def mark_retrying(self, pk: int, *, attempt: int, error_kind: str, error: str, next_attempt_at) -> bool:
        return bool(
            self.filter(pk=pk, status=MessageStatus.SENDING, attempt_count=attempt).update(
                status=MessageStatus.RETRYING,
                last_error_kind=error_kind,
                last_error=error,
                next_attempt_at=next_attempt_at,
                updated_at=timezone.now(),
            )
        )

    def mark_failed(self, pk: int, *, attempt: int, error_kind: str, error: str) -> bool:
        now = timezone.now()
        return bool(
            self.filter(pk=pk, status=MessageStatus.SENDING, attempt_count=attempt).update(
                status=MessageStatus.FAILED,
                last_error_kind=error_kind,
                last_error=error,
                next_attempt_at=None,
                finished_at=now,
                updated_at=now,
            )
        )

    def cancel(self, pk: int) -> bool:
        now = timezone.now()
        return bool(
            self.filter(pk=pk, status__in=CANCELLABLE_STATUSES).update(
                status=MessageStatus.CANCELLED, next_attempt_at=None, finished_at=now, updated_at=now
            )
        )

    # For the apps that make messages in numbers (a campaign's run), by their ``source``: one UPDATE for them all.

    def cancel_waiting(self, *, source: str) -> int:
        """Every waiting message of ``source`` -> cancelled; how many moved."""
        now = timezone.now()
        return self.filter(source=source, status__in=CANCELLABLE_STATUSES).update(
            status=MessageStatus.CANCELLED, next_attempt_at=None, finished_at=now, updated_at=now
        )

    def hold_waiting(self, *, source: str) -> int:
        """Every waiting message of ``source`` -> scheduled with no send time ("held"): beat never releases it and
        a send task already in the broker finds nothing to claim. ``schedule_held`` gives them times again."""
        return self.filter(source=source, status__in=CANCELLABLE_STATUSES).update(
            status=MessageStatus.SCHEDULED, scheduled_at=None, next_attempt_at=None, updated_at=timezone.now()
        )

    def insert_many(self, messages: list) -> None:
        """Store new messages as ``bulk_create`` does (their pks set), on PostgreSQL in one COPY: 33 ms per 1,000
        rows instead of the INSERT's 72 (bench/campaign_fanout.py's machine), most of which was Django compiling
        and quoting each value. Every value is the Python one, so a field's ``default`` applies and its
        ``db_default`` is never needed."""
        connection = connections[self.db]
        if connection.vendor != "postgresql" or not messages:
            self.bulk_create(messages)
            return
        meta = self.model._meta
        fields = meta.concrete_fields
        # Text, numbers and times go to COPY as they are; anything else (a JSON field) through its own preparing.
        prepared = [field.get_internal_type() not in _COPY_AS_IS for field in fields]
        if any(prepared):
            def row(message):
                return [field.get_db_prep_save(getattr(message, field.attname), connection) if prepare
                        else getattr(message, field.attname) for field, prepare in zip(fields, prepared)]
        else:
            row = operator.attrgetter(*(field.attname for field in fields))  # a row's values in one C call
        columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
        if messages[0].pk is None:
            self.reserve_pks(messages)
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN") as copy:
                for message in messages:
                    copy.write_row(row(message))
        for message in messages:
            message._state.adding, message._state.db = False, self.db

    def reserve_pks(self, messages: list) -> None:
        """Give new messages their pks from the table's sequence (PostgreSQL), ahead of ``insert_many``. A sequence
        is outside transactions, so any connection may take them."""
        meta = self.model._meta
        with connections[self.db].cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(messages)],
            )
            for message, (pk,) in zip(messages, cursor.fetchall()):
                message.pk = pk

    def insert_one(self, message) -> None:
        """Store one new message (its pk set), as ``save(force_insert=True)`` does (see ``_insert_one``)."""
        _insert_one(message, using=self.db)

    def schedule_held(self, times: dict) -> int:
        """Held messages -> scheduled at ``times[pk]``; beat releases them then. Others are left alone."""
        return self.filter(pk__in=list(times), status=MessageStatus.SCHEDULED, scheduled_at__isnull=True).update(
            scheduled_at=Case(*(When(pk=pk, then=Value(moment)) for pk, moment in times.items())),
            updated_at=timezone.now(),
        )

    def expire(self, pk: int) -> bool:
        """Waiting (scheduled, queued, retrying) -> expired, once its ``expires_at`` has passed. Never from
        sending: an attempt in flight may already have reached WhatsApp, so it finishes normally."""
        now = timezone.now()
        return bool(self.filter(pk=pk, status__in=CANCELLABLE_STATUSES, expires_at__lte=now).update(**_expired(now)))

    def expire_overdue(self, *, now, limit: int = 5000) -> dict[str, int]:
        """Every waiting message whose ``expires_at`` is past ``now`` (at most ``limit``) -> expired. Returns how
        many this caller moved, by instance: one conditional UPDATE per instance, so a row another sweep (or a
        worker's claim) moved first is neither moved nor counted twice."""
        overdue = list(
            self.filter(status__in=CANCELLABLE_STATUSES, expires_at__lte=now)
            .order_by()
            .values_list("pk", "instance")[:limit]
        )
        by_instance: dict[str, list[int]] = {}
        for pk, instance in overdue:
            by_instance.setdefault(instance, []).append(pk)
        moved = {}
        for instance, pks in by_instance.items():
            count = self.filter(pk__in=pks, status__in=CANCELLABLE_STATUSES, expires_at__lte=now).update(**_expired(now))
            if count:
                moved[instance] = count
        return moved

    def release_for_dispatch(self, pk: int, *, task_id: str) -> bool:
        """Scheduled -> queued because an operator said "send now": a person is waiting, so it goes as
        transactional."""
        return bool(
            self.filter(pk=pk, status=MessageStatus.SCHEDULED).update(
                status=MessageStatus.QUEUED, task_id=task_id, priority=Priority.TRANSACTIONAL, updated_at=timezone.now()
            )
        )

    def release_due(self, *, now, limit: int) -> list["OutboundMessage"]:
        """Scheduled -> queued for every message due by ``now`` (at most ``limit``), in three statements however
        many there are. Returns the messages this caller released: each gets a fresh task id in one UPDATE, and
        only rows carrying the id this caller wrote are its own, so two overlapping beat ticks release each once."""
        due = list(
            self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), status=MessageStatus.SCHEDULED, scheduled_at__lte=now)
            .order_by("scheduled_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return []
        task_ids = {pk: new_task_id() for pk in due}
        self.filter(pk__in=due, status=MessageStatus.SCHEDULED).update(
            status=MessageStatus.QUEUED,
            task_id=Case(*(When(pk=pk, then=Value(task_id)) for pk, task_id in task_ids.items())),
            updated_at=timezone.now(),
        )
        released = self.filter(pk__in=due, status=MessageStatus.QUEUED).only("pk", "task_id", "instance", "priority")
        return [message for message in released if message.task_id == task_ids[message.pk]]

    def take_stuck_queued(self, pk: int, *, stuck_before, now) -> bool:
        """Queued and untouched since ``stuck_before`` (its task lost while others wait): True for the one sweep
        that marks it touched now and so republishes it; conditional, so an overlapping sweep does not."""
        return bool(self.filter(pk=pk, status=MessageStatus.QUEUED, updated_at__lt=stuck_before).update(updated_at=now))

    def take_stuck_retrying(self, pk: int, *, stuck_before, now) -> bool:
        """Retrying with its retry time before ``stuck_before`` (its task lost): True for the one sweep that moves
        the retry time to now and so republishes it; conditional, so an overlapping sweep does not."""
        return bool(
            self.filter(pk=pk, status=MessageStatus.RETRYING, next_attempt_at__lt=stuck_before).update(
                next_attempt_at=now, updated_at=now
            )
        )

    def take_unpublished(self, message: "OutboundMessage", *, now) -> bool:
        """Clear the failed-publish mark ``message`` was read with: True for the one sweep that clears it and so
        republishes it; conditional on the mark and status read, so a newer mark or a claim in between wins."""
        return bool(
            self.filter(pk=message.pk, status=message.status, publish_failed_at=message.publish_failed_at).update(
                publish_failed_at=None, updated_at=now
            )
        )

    def lost_tasks(self, *, stale) -> "OutboundMessageQuerySet":
        """Due rows nothing has touched since ``stale``: queued (and due) or retrying that long past its time."""
        return self.filter(
            Q(status=MessageStatus.QUEUED, updated_at__lt=stale)
            & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=stale))
            | Q(status=MessageStatus.RETRYING, next_attempt_at__lt=stale)
        )

    def take_lost_task(self, pk: int, *, stale, now) -> bool:
        """True for the one sweep that marks a ``lost_tasks`` row touched now and so republishes it; conditional
        on it still being lost, so a claim or an overlapping sweep in between wins."""
        return bool(self.lost_tasks(stale=stale).filter(pk=pk).update(updated_at=now))

    def recover_interrupted(self, pk: int, *, stuck_before, give_up: bool, dead_attempt: int | None = None) -> bool:
        """Sending -> retrying (or failed, when no attempts are left) for a send whose worker vanished."""
        now = timezone.now()
        if give_up:
            change = dict(
                status=MessageStatus.FAILED,
                last_error="The worker stopped during the last allowed attempt; it may have been sent.",
                next_attempt_at=None,
                finished_at=now,
            )
        else:
            change = dict(
                status=MessageStatus.RETRYING,
                last_error="The worker stopped during the send; Evolution API is asked before sending again.",
                next_attempt_at=now,
            )
        # Interrupted: the send has outlived the stuck cutoff, or (``dead_attempt``) it is still in the attempt
        # whose worker's heartbeat has stopped, so no live process can still be inside that call.
        interrupted = Q(updated_at__lt=stuck_before)
        if dead_attempt is not None:
            interrupted |= Q(attempt_count=dead_attempt)
        return bool(
            self.filter(interrupted, pk=pk, status=MessageStatus.SENDING).update(
                last_error_kind="interrupted", updated_at=now, **change
            )
        )

    def mark_unpublished(self, pks) -> int:
        """Their send task did not reach the broker: beat's next sweep publishes them again, not the cutoff."""
        return self.filter(pk__in=pks, status__in=(MessageStatus.QUEUED, MessageStatus.RETRYING)).update(
            publish_failed_at=timezone.now()
        )


def _expired(now) -> dict:
    return dict(status=MessageStatus.EXPIRED, next_attempt_at=None, finished_at=now, updated_at=now)


class OutboundMessage(models.Model):
    phone = models.CharField(max_length=20, help_text="E.164, e.g. +5511987654321")
    text = models.TextField()
    instance = models.CharField(max_length=64, help_text="Evolution API instance name")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    priority = models.CharField(
        max_length=16, choices=Priority.choices, default=Priority.TRANSACTIONAL, db_default=Priority.TRANSACTIONAL
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # Not sent by then, it is never sent (a one-time code is useless late): it ends expired.
    expires_at = models.DateTimeField(null=True, blank=True, default=None, db_default=None)
    # A key is unique within its scope: each API user's keys are its own, and the console's own (resends,
    # composed messages) share the empty scope. See messaging/idempotency.py.
    idempotency_scope = models.CharField(max_length=40, blank=True, default="", db_default="")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # A digest of what the keyed request asked for: the same key with another request is refused, not answered
    # with the first message (see messaging/idempotency.py).
    request_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    # What made this message, for the apps that create them in numbers ("campaign:12"); messaging never reads it,
    # so it imports none of them.
    source = models.CharField(max_length=64, blank=True, default="", db_default="")
    # Where each status change (sent, delivered, read, failed, expired) is POSTed, signed; "" for none. The
    # callbacks app records and delivers them (messaging only announces them: messaging/signals.py).
    callback_url = models.URLField(max_length=500, blank=True, default="", db_default="")
    task_id = models.CharField(max_length=255, blank=True, default="", help_text="Celery task id of the send")
    attempt_count = models.PositiveSmallIntegerField(default=0)
    # Attempts that failed because their instance was disconnected (it was paused then): they stay in the
    # history but do not count against MESSAGING_MAX_RETRIES (see ``counted_attempts``).
    uncounted_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    evolution_message_id = models.CharField(max_length=128, blank=True, default="")
    # The JID WhatsApp actually delivered to; it may differ from the phone (see the Evolution contract).
    remote_jid = models.CharField(max_length=128, blank=True, default="")
    last_error_kind = models.CharField(max_length=32, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # From Evolution's receipts (inbound/), never moved back: delivered to the phone, then read (or played).
    delivered_at = models.DateTimeField(null=True, blank=True, default=None, db_default=None)
    read_at = models.DateTimeField(null=True, blank=True, default=None, db_default=None)
    # Set when publishing its send task failed (broker down): the stuck-work sweep publishes it again at once.
    publish_failed_at = models.DateTimeField(null=True, blank=True, default=None, db_default=None)

    objects = OutboundMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="msg_status_created"),
            models.Index(fields=["phone", "created_at"], name="msg_phone_created"),
            models.Index(fields=["created_at"], name="msg_created"),
            # Beat's due-message scan and the stuck-work sweeper read by status + time.
            models.Index(fields=["status", "scheduled_at"], name="msg_status_scheduled"),
            models.Index(fields=["status", "updated_at"], name="msg_status_updated"),
            models.Index(fields=["evolution_message_id"], name="msg_evolution_id"),
            # GET /tasks/{id}, by equality only: a plain B-tree, not db_index's second one for LIKE on PostgreSQL
            # (a 36-character id in two indexes was a tenth of storing a row: 100,000 rows 2.55 -> 2.26 s).
            models.Index(fields=["task_id"], name="msg_task_id"),
            # The admin's instance filter; the dashboard's hourly chart and failure reasons (index-only scans).
            models.Index(fields=["instance", "created_at"], name="msg_instance_created"),
            models.Index(fields=["status", "finished_at", "last_error_kind"], name="msg_status_finished"),
            # Beat's expiry sweep every few seconds: only waiting rows that can expire are in it.
            models.Index(
                fields=["expires_at"], name="msg_expires_waiting",
                condition=Q(expires_at__isnull=False, status__in=["scheduled", "queued", "retrying"]),
            ),
            # The sweep's "never published" scan: only the few rows whose publish failed are in it.
            models.Index(fields=["publish_failed_at"], name="msg_publish_failed", condition=Q(publish_failed_at__isnull=False)),
            # A campaign run's progress (GROUP BY status of one source, or of a campaign's prefix: LIKE needs the
            # pattern opclass), its pause and cancel (one UPDATE by source), and whether it still has work.
            models.Index(fields=["source", "status"], name="msg_source_status", opclasses=["varchar_pattern_ops"] * 2),
        ]
        constraints = [
            # Only keyed messages are in it (a key is only ever looked up by its value): a bulk request's or a
            # campaign's keyless rows do not pay for it.
            models.UniqueConstraint(
                fields=["idempotency_scope", "idempotency_key"], name="msg_idempotency_key_in_scope",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]
        # Operator actions are permissions, so roles (groups) grant them; see messaging/roles.py.
        permissions = [
            ("resend_outboundmessage", "Can resend a sent or failed message"),
            ("cancel_outboundmessage", "Can cancel a message not yet sending"),
            ("send_now_outboundmessage", "Can send a scheduled message now"),
            ("schedule_outboundmessage", "Can schedule a message for later"),
            ("requeue_outboundmessage", "Can run the stuck-work sweep now"),
        ]

    def __str__(self):
        return f"#{self.pk} to {self.phone} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def counted_attempts(self) -> int:
        """The attempts that count against MESSAGING_MAX_RETRIES: all but those its instance's pause excused."""
        return self.attempt_count - self.uncounted_attempts

    @classmethod
    def build(cls, **values) -> "OutboundMessage":
        """An unsaved message, as ``OutboundMessage(**values)`` makes it (a related object by its name,
        ``created_by=user``), at a tenth of the cost: Django's keyword path looks up every field's default and
        descriptor per message; this takes the defaults from a plan made once and sets the instance's attributes
        as ``Model.__init__`` would (its positional path still called ``setattr`` per field: 10 of a bulk
        request's 100 ms). A campaign run of 100,000 recipients builds one per recipient."""
        defaults, columns, relations, made_defaults = _build_plan()
        row = defaults.copy()
        related = []
        for name, value in values.items():
            column = columns.get(name)
            if column is None:
                if name not in relations:
                    raise TypeError(f"OutboundMessage() got an unexpected keyword argument '{name}'")
                column, field = relations[name]
                if value is not None:
                    related.append((field, value))
                    value = value.pk
            row[column] = value
        for column, make in made_defaults:  # timezone.now, when not given
            if row[column] is _MADE_DEFAULT:
                row[column] = make()
        if (pre_init.receivers or post_init.receivers) and (pre_init.has_listeners(cls) or post_init.has_listeners(cls)):
            message = cls(*row)  # someone watches messages being made: Django's own way, which tells them
        else:
            message = cls.__new__(cls)
            # As its setattr would (columns' keys are the attnames in row order): a foreign key's id assignment only
            # drops a cached object, which a new one has not.
            message.__dict__.update(zip(columns, row))
            message._state = ModelState()
        for field, obj in related:
            field.set_cached_value(message, obj)
        return message


_MADE_DEFAULT = object()


@functools.cache
def _build_plan() -> tuple:
    """For ``OutboundMessage.build``: the row of defaults, each column's place by attname, each relation's place
    and field by name, and the columns whose default is made per message."""
    fields = OutboundMessage._meta.concrete_fields
    made = [(column, field.default) for column, field in enumerate(fields) if field.has_default() and callable(field.default)]
    defaults = [_MADE_DEFAULT if (column, field.default) in made else field.get_default() for column, field in enumerate(fields)]
    columns = {field.attname: column for column, field in enumerate(fields)}
    relations = {field.name: (column, field) for column, field in enumerate(fields) if field.is_relation}
    return defaults, columns, relations, made


class AttemptOutcome(models.TextChoices):
    STARTED = "started", "Started"
    SENT = "sent", "Sent"
    TEMPORARY_ERROR = "temporary_error", "Temporary error"
    PERMANENT_ERROR = "permanent_error", "Permanent error"
    INTERRUPTED = "interrupted", "Interrupted"


class SendAttemptQuerySet(models.QuerySet):
    """An attempt is written as ``started`` before the HTTP call and finished once, after it."""

    def start(self, *, message: "OutboundMessage", task_id: str, worker: str = "") -> "SendAttempt":
        # The claim just counted this attempt on the message; its number is that count.
        attempt = self.model(message=message, number=message.attempt_count, task_id=task_id, worker=worker)
        _insert_one(attempt, using=self.db)
        return attempt

    def finish_failed(
        self, pk: int, *, retryable: bool, http_status, error_kind: str, error_text: str, maybe_sent: bool, finished_at,
        counted: bool = True,
    ) -> int:
        """``counted=False``: it failed because its instance is disconnected (see ``pause_attempt``)."""
        return self.filter(pk=pk, outcome=AttemptOutcome.STARTED).update(
            counted=counted,
            outcome=AttemptOutcome.TEMPORARY_ERROR if retryable else AttemptOutcome.PERMANENT_ERROR,
            finished_at=finished_at,
            http_status=http_status,
            error_kind=error_kind,
            error_text=error_text[:2000],
            maybe_sent=maybe_sent,
        )

    def mark_interrupted(self, *, message_id: int, number: int) -> int:
        """The worker of this attempt vanished mid-call: WhatsApp may have the message, so the next try asks."""
        return self.filter(message_id=message_id, number=number, outcome=AttemptOutcome.STARTED).update(
            outcome=AttemptOutcome.INTERRUPTED,
            finished_at=timezone.now(),
            error_kind="interrupted",
            error_text="The worker stopped during the send.",
            maybe_sent=True,
        )

    def first_started_at(self, message_id: int):
        return self.filter(message_id=message_id).order_by("number").values_list("started_at", flat=True).first()

    def maybe_sent(self, *, message_id: int, number: int) -> bool:
        """Whether attempt ``number`` may have reached WhatsApp despite its error."""
        return self.filter(message_id=message_id, number=number, maybe_sent=True).exists()


class SendAttempt(models.Model):
    """One try at Evolution API. Written as ``started`` before the HTTP call, completed after it."""

    # No index of its own: attempt_unique_number (message, number) leads with it, and each attempt's INSERT and
    # outcome UPDATE would maintain both.
    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    number = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.STARTED)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, blank=True, default="")
    error_text = models.TextField(blank=True, default="")
    # True when WhatsApp may have sent it despite the error: the next try asks findMessages before sending.
    maybe_sent = models.BooleanField(default=False)
    # True when this try found the message already sent (findMessages) and did not send it again.
    reconciled = models.BooleanField(default=False)
    evolution_message_id = models.CharField(max_length=128, blank=True, default="")
    task_id = models.CharField(max_length=255, blank=True, default="")
    # False when it failed because its instance was disconnected: it did not count against the retry budget.
    counted = models.BooleanField(default=True, db_default=True)
    # The worker process holding this attempt (messaging/heartbeats.py); empty when it had no heartbeat.
    worker = models.CharField(max_length=255, blank=True, default="", db_default="")

    objects = SendAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["message_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["message", "number"], name="attempt_unique_number"),
        ]
        indexes = [models.Index(fields=["outcome", "started_at"], name="attempt_outcome_started")]

    def __str__(self):
        return f"attempt {self.number} of message #{self.message_id}: {self.outcome}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)
