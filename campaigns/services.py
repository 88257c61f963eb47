"""Campaigns: create, launch, start their runs when due, pause, resume, cancel; and contacts' opt-outs.

A run's messages go through ``messaging.services.accept_messages`` (the one send path): stored in bulk with the
send time the campaign's pace gives each (``campaigns.pacing``), released by beat's due-check as their time comes,
sent by the same task on the bulk priority. Every state change is a conditional UPDATE, so beat, the workers and
an operator can act at the same moment and each change happens once. Beat's tick is ``start_due_runs`` plus
``finish_runs`` (campaigns/tasks.py, scheduled in config/celery.py).
"""
import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from itertools import islice

from celery.schedules import crontab as celery_crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from campaigns import pacing, selectors, texts
from campaigns.models import (
    ACTIVE_CAMPAIGN_STATUSES, Campaign, CampaignRun, CampaignStatus, Contact, RunStatus, SavedFilter, Tag,
)
from config.overlap import Overlapped
from evolution import throttle
from inbound import selectors as inbound_selectors
from messaging import idempotency, sources
from messaging import services as messaging
from messaging.callback_urls import clean_callback_url
from messaging.models import OutboundMessage
from messaging.phones import normalize_phone

log = logging.getLogger("campaigns")

FAN_OUT_CHUNK = 1000  # messaging.services.BULK_MAX_MESSAGES: one INSERT per chunk
FIRST_SEND_DELAY = timedelta(seconds=1)  # a send time must be in the future when it is stored
DUE_TOLERANCE = timedelta(seconds=2)  # beat fires a recurrence at its second; the row may say a moment later
RECURRENCE_TASK = "start_due_campaign_runs"


# --- contacts ------------------------------------------------------------------------------------------------


def upsert_contacts(*, recipients: list[dict]) -> list[Contact]:
    """Contacts for ``[{"phone": ..., "name"?: ..., other fields...}]``: new phones created, known ones get the
    given name and fields merged in. Raises ValidationError naming each bad item (``recipients[3].phone``)."""
    errors, rows = {}, {}
    for index, item in enumerate(recipients):
        try:
            phone = normalize_phone(str(item.get("phone") or ""))
        except ValidationError as error:
            errors[f"recipients[{index}].phone"] = error.messages
            continue
        fields = {str(key): str(value) for key, value in item.items() if key not in ("phone", "name") and value is not None}
        row = rows.setdefault(phone, {"name": "", "fields": {}})
        row["name"] = str(item.get("name") or "") or row["name"]
        row["fields"].update(fields)
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        known = {c.phone: c for c in Contact.objects.select_for_update().filter(phone__in=list(rows))}
        Contact.objects.bulk_create(
            [Contact(phone=phone, name=row["name"], fields=row["fields"], created_at=now, updated_at=now)
             for phone, row in rows.items() if phone not in known],
            ignore_conflicts=True,
        )
        for phone, contact in known.items():
            contact.name = rows[phone]["name"] or contact.name
            contact.fields = {**contact.fields, **rows[phone]["fields"]}
            contact.updated_at = now
        Contact.objects.bulk_update(known.values(), ["name", "fields", "updated_at"])
    return list(Contact.objects.filter(phone__in=list(rows)))


def opt_out(*, contact_id: int, source: str) -> bool:
    """Record that a contact asked to stop; no campaign run made afterwards writes to them. Waiting messages
    already made for them are left to their run (a pause or cancel stops those)."""
    return bool(Contact.objects.filter(pk=contact_id, opted_out_at__isnull=True).update(
        opted_out_at=timezone.now(), opt_out_source=source, updated_at=timezone.now()
    ))


def opt_out_phones(*, phones: list[str], source: str) -> int:
    """``opt_out`` by phone (E.164), for the contacts that exist; how many were newly opted out. A reply's STOP
    arrives this way (``campaigns.receivers``), and from ``prepare_run`` for a contact made after their STOP."""
    now = timezone.now()
    return Contact.objects.filter(phone__in=phones, opted_out_at__isnull=True).update(
        opted_out_at=now, opt_out_source=source, updated_at=now
    )


# --- creating and checking a campaign -------------------------------------------------------------------------


def create_campaign(
    *, name: str, text: str, instance: str | None = None, audience: str | None = None,
    recipients: list[dict] | None = None, scheduled_at: datetime | None = None, rate_per_minute: int = 20,
    time_zone: str = "UTC", quiet_hours: tuple | None = None, valid_for_seconds: int | None = None,
    recurrence: dict | None = None, created_by=None, callback_url: str = "", saved_filter: str | None = None,
) -> Campaign:
    """A draft campaign (``launch_campaign`` schedules it). ``audience`` is a tag name, ``saved_filter`` a saved
    filter's name (``SavedFilter``); ``recipients`` are
    ``{"phone", ...fields}`` made or merged into contacts; ``recurrence`` is ``{"crontab": "0 9 * * *"}`` or
    ``{"every_seconds": 3600}``; ``quiet_hours`` is ``(start time, end time)`` in ``time_zone``."""
    instance = instance or settings.EVOLUTION_INSTANCE_NAME
    campaign = Campaign(
        name=name, text=text, instance=instance, scheduled_at=scheduled_at, rate_per_minute=rate_per_minute,
        time_zone=time_zone, valid_for_seconds=valid_for_seconds, created_by=created_by, callback_url=callback_url or "",
        quiet_hours_start=quiet_hours[0] if quiet_hours else None, quiet_hours_end=quiet_hours[1] if quiet_hours else None,
    )
    if audience:
        campaign.audience = Tag.objects.filter(name=audience).first()
        if campaign.audience is None:
            raise ValidationError({"audience": [f'No contact has the tag "{audience}".']})
    if saved_filter:
        campaign.saved_filter = SavedFilter.objects.filter(name=saved_filter).first()
        if campaign.saved_filter is None:
            raise ValidationError({"saved_filter": [f'No saved filter is called "{saved_filter}".']})
    validate_settings(campaign)
    if not audience and not saved_filter and not recipients:
        raise ValidationError({"recipients": ["Give recipients, an audience (a tag) or a saved filter."]})
    with transaction.atomic():
        contacts = upsert_contacts(recipients=recipients) if recipients else []
        campaign.save()
        campaign.recipients.add(*contacts)
        if recurrence:
            set_recurrence(campaign=campaign, **recurrence)
    log.info("campaign=%s created name=%r instance=%s", campaign.pk, campaign.name, campaign.instance)
    return campaign


def validate_settings(campaign: Campaign) -> None:
    """What a campaign must satisfy whoever saves it (API, admin, shell); raises ValidationError by field."""
    errors = {}
    if campaign.instance not in settings.EVOLUTION_INSTANCES:
        errors["instance"] = [f'Unknown instance "{campaign.instance}". Known: {", ".join(settings.EVOLUTION_INSTANCES)}.']
    else:
        interval = throttle.interval_for(campaign.instance)
        ceiling = int(60 / interval) if interval else None
        if ceiling is not None and campaign.rate_per_minute > ceiling:
            errors["rate_per_minute"] = [f"At most {ceiling} a minute: the pace of instance {campaign.instance}."]
    if not campaign.rate_per_minute or campaign.rate_per_minute < 1:
        errors["rate_per_minute"] = ["At least 1 a minute."]
    try:
        pacing.zone(campaign.time_zone)
    except ValidationError as error:
        errors.update(error.message_dict)
    if (campaign.quiet_hours_start is None) != (campaign.quiet_hours_end is None):
        errors["quiet_hours"] = ["Give both the start and the end of the quiet hours, or neither."]
    try:
        texts.placeholders(campaign.text)
    except ValidationError as error:
        errors.update(error.message_dict)
    if not (campaign.text or "").strip():
        errors["text"] = ["This field may not be blank."]
    try:
        clean_callback_url(campaign.callback_url)  # the same rule as each of its messages'
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)


def set_recurrence(*, campaign: Campaign, crontab: str | None = None, every_seconds: int | None = None) -> PeriodicTask:
    """Repeat the campaign on a crontab ("minute hour day month weekday", in the campaign's time zone) or every
    so many seconds, as a django-celery-beat periodic task an operator can edit under Periodic tasks."""
    if bool(crontab) == bool(every_seconds):
        raise ValidationError({"recurrence": ['Give "crontab" or "every_seconds".']})
    if crontab:
        parts = crontab.split()
        if len(parts) != 5:
            raise ValidationError({"recurrence": ['A crontab has five fields: "minute hour day month weekday".']})
        minute, hour, day_of_month, month_of_year, day_of_week = parts
        try:
            celery_crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                           day_of_week=day_of_week)
        except (ValueError, TypeError) as error:
            raise ValidationError({"recurrence": [f"Not a crontab: {error}"]})
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week,
            timezone=campaign.time_zone,
        )
        kind = {"crontab": schedule, "interval": None}
    else:
        if isinstance(every_seconds, bool) or not isinstance(every_seconds, int) or every_seconds < 60:
            raise ValidationError({"recurrence": ["every_seconds: a whole number, 60 or more."]})
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every_seconds, period=IntervalSchedule.SECONDS)
        kind = {"interval": schedule, "crontab": None}
    task = campaign.recurrence or PeriodicTask(name=f"campaign {campaign.pk}: {campaign.name}"[:200], task=RECURRENCE_TASK)
    task.kwargs = json.dumps({"campaign_id": campaign.pk})
    for name, value in kind.items():
        setattr(task, name, value)
    task.save()
    if campaign.recurrence_id != task.pk:
        campaign.recurrence = task
        Campaign.objects.filter(pk=campaign.pk).update(recurrence=task)
    return task


def audience_of(campaign: Campaign):
    """The contacts a run of ``campaign`` considers now: its tag's, its saved filter's and its explicit
    recipients, each once."""
    contacts = Contact.objects.filter(campaigns=campaign)
    if campaign.audience_id:
        contacts = contacts | Contact.objects.filter(tags=campaign.audience_id)
    if campaign.saved_filter_id:
        contacts = contacts | Contact.objects.filter(pk__in=campaign.saved_filter.contacts().values("pk"))
    return contacts.distinct()


def sample_contact(*, audience_id: int | None = None, recipient_ids=()) -> Contact | None:
    """The first contact a campaign with this audience (a tag's id) and these recipients would write to."""
    if not audience_id and not recipient_ids:
        return None
    chosen = Q(pk__in=list(recipient_ids)) | (Q(tags=audience_id) if audience_id else Q(pk__in=[]))
    return Contact.objects.filter(chosen, opted_out_at__isnull=True).order_by("pk").first()


def check_template(*, campaign_id: int) -> list[texts.Missing]:
    """Placeholders some recipients have no value for (how many, which), for every contact a run would write to."""
    campaign = Campaign.objects.get(pk=campaign_id)
    reachable = audience_of(campaign).filter(opted_out_at__isnull=True).order_by("pk")
    return texts.missing_placeholders(campaign.text, reachable.values_list("phone", "name", "fields").iterator(2000))


# --- the lifecycle: draft -> scheduled -> running -> completed, and pause, resume, cancel ---------------------


def launch_campaign(*, campaign_id: int) -> Campaign:
    """Draft -> scheduled, due at its ``scheduled_at`` (now when empty) or its recurrence's first time. Refused
    with a ValidationError when a placeholder is missing for some recipients (each with how many and which), or
    when it has no one to write to."""
    campaign = Campaign.objects.get(pk=campaign_id)
    validate_settings(campaign)
    missing = check_template(campaign_id=campaign_id)
    if missing:
        raise ValidationError({"text": [str(problem) for problem in missing]})
    if not audience_of(campaign).exists():
        raise ValidationError({"recipients": ["The campaign has no recipients."]})
    now = timezone.now()
    first = campaign.scheduled_at or (next_occurrence(campaign, after=now) if campaign.recurrence_id else now)
    if not Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.DRAFT).update(
        status=CampaignStatus.SCHEDULED, next_run_at=first, updated_at=now
    ):
        raise ValidationError({"status": [f"Only a draft can be launched; this one is {campaign.get_status_display().lower()}."]})
    log.info("campaign=%s launched next_run_at=%s", campaign_id, first.isoformat())
    return Campaign.objects.get(pk=campaign_id)


def next_occurrence(campaign: Campaign, *, after: datetime) -> datetime | None:
    """The recurrence's first time later than ``after`` (None without one, or when it is disabled)."""
    task = campaign.recurrence
    if task is None or not task.enabled or task.scheduler is None:
        return None
    schedule = task.schedule
    moment = after
    if isinstance(schedule, celery_crontab):
        start, delta, _ = schedule.remaining_delta(moment.astimezone(schedule.tz))
        return start + delta
    return moment + schedule.run_every


def pause_campaign(*, campaign_id: int) -> bool:
    """Scheduled or running -> paused: no run starts and every waiting message of its runs is held (a send
    already in progress finishes). False when it was not active."""
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign_id, status__in=(CampaignStatus.SCHEDULED, CampaignStatus.RUNNING)).update(
            status=CampaignStatus.PAUSED, updated_at=timezone.now()
        ):
            return False
        runs = list(CampaignRun.objects.filter(campaign_id=campaign_id, status__in=(RunStatus.PREPARING, RunStatus.RUNNING)))
        CampaignRun.objects.filter(pk__in=[run.pk for run in runs], status=RunStatus.RUNNING).update(status=RunStatus.PAUSED)
    held = sum(sources.hold_messages_from(source=run.source) for run in runs)
    log.info("campaign=%s paused held=%s", campaign_id, held)
    return True


def resume_campaign(*, campaign_id: int) -> bool:
    """Paused -> running (or scheduled when no run is under way): the held messages get send times again from
    now, at the campaign's pace and outside its quiet hours. False when it was not paused."""
    campaign = Campaign.objects.get(pk=campaign_id)
    runs = list(CampaignRun.objects.filter(campaign_id=campaign_id, status__in=(RunStatus.PAUSED, RunStatus.PREPARING)))
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.PAUSED).update(
            status=CampaignStatus.RUNNING if runs else CampaignStatus.SCHEDULED, updated_at=timezone.now()
        ):
            return False
        CampaignRun.objects.filter(pk__in=[run.pk for run in runs], status=RunStatus.PAUSED).update(status=RunStatus.RUNNING)
    times = _send_times(campaign, start=timezone.now() + FIRST_SEND_DELAY)
    rescheduled = 0
    for run in runs:
        held = selectors.held_message_ids(source=run.source)
        for start in range(0, len(held), FAN_OUT_CHUNK):
            chunk = held[start:start + FAN_OUT_CHUNK]
            rescheduled += sources.schedule_held_messages(times=dict(zip(chunk, times)))
    log.info("campaign=%s resumed rescheduled=%s", campaign_id, rescheduled)
    return True


def cancel_campaign(*, campaign_id: int) -> bool:
    """Any state but completed or cancelled -> cancelled: no run starts again, its recurrence is switched off,
    and every waiting message of its runs is cancelled (a send in progress finishes)."""
    now = timezone.now()
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign_id, status__in=(CampaignStatus.DRAFT, *ACTIVE_CAMPAIGN_STATUSES)).update(
            status=CampaignStatus.CANCELLED, next_run_at=None, updated_at=now
        ):
            return False
        PeriodicTask.objects.filter(campaign__pk=campaign_id).update(enabled=False)
        runs = list(CampaignRun.objects.filter(campaign_id=campaign_id).exclude(status__in=(RunStatus.COMPLETED, RunStatus.CANCELLED)))
        CampaignRun.objects.filter(pk__in=[run.pk for run in runs]).update(status=RunStatus.CANCELLED, finished_at=now)
    cancelled = sum(sources.cancel_messages_from(source=run.source) for run in runs)
    log.info("campaign=%s cancelled messages_cancelled=%s", campaign_id, cancelled)
    return True


# --- runs ------------------------------------------------------------------------------------------------------


def start_due_runs(*, campaign_id: int | None = None, now: datetime | None = None) -> list[CampaignRun]:
    """Beat's due-check: a run for each scheduled or running campaign whose ``next_run_at`` has come, its messages
    prepared by a task after commit. The campaign's ``next_run_at`` moves to its next occurrence (or None) in the
    same conditional UPDATE that claims this one, so two beats, or a tick and a recurrence firing together, start
    one run; the run's unique (campaign, occurrence) backs that up."""
    from campaigns import tasks

    now = now or timezone.now()
    due = Campaign.objects.filter(
        status__in=(CampaignStatus.SCHEDULED, CampaignStatus.RUNNING), next_run_at__lte=now + DUE_TOLERANCE
    ).select_related("recurrence__crontab", "recurrence__interval")
    if campaign_id is not None:
        due = due.filter(pk=campaign_id)
    started = []
    for campaign in due:
        occurrence = campaign.next_run_at
        following = next_occurrence(campaign, after=max(occurrence, now))
        with transaction.atomic():
            if not Campaign.objects.filter(pk=campaign.pk, next_run_at=occurrence, status__in=(
                CampaignStatus.SCHEDULED, CampaignStatus.RUNNING
            )).update(next_run_at=following, status=CampaignStatus.RUNNING, updated_at=now):
                continue  # another tick took this occurrence
            number = (CampaignRun.objects.filter(campaign=campaign).aggregate(n=Max("number"))["n"] or 0) + 1
            run = CampaignRun.objects.create(campaign=campaign, number=number, due_at=occurrence, started_at=now)
            transaction.on_commit(lambda run_id=run.pk: tasks.prepare_campaign_run.delay(run_id))
        log.info("campaign=%s run=%s started due_at=%s next_run_at=%s", campaign.pk, number, occurrence.isoformat(),
                 following and following.isoformat())
        started.append(run)
    return started


def prepare_run(*, run_id: int) -> CampaignRun:
    """Make the run's messages: one per recipient, in chunks of one INSERT each, with send times at the campaign's
    pace. Skipped, and counted by reason: contacts who opted out (here or by a STOP reply, ``inbound.OptOut``),
    phones WhatsApp said are not on it, and texts that do not validate. Safe to call again (a crash, a double trigger): a contact's message in a run is made once
    (its idempotency key), so only those missing are made."""
    run = CampaignRun.objects.select_related("campaign").get(pk=run_id)
    campaign = run.campaign
    source = run.source
    made = selectors.contacts_with_messages_in(source=source)
    expires_at = run.started_at + timedelta(seconds=campaign.valid_for_seconds) if campaign.valid_for_seconds else None
    times = _send_times(campaign, start=timezone.now() + FIRST_SEND_DELAY)
    skipped: Counter = Counter()
    recipients = 0
    contacts = (audience_of(campaign).order_by("pk")
                .annotate(not_on_whatsapp=selectors.not_on_whatsapp(), replied_stop=inbound_selectors.replied_stop())
                .values_list("pk", "phone", "name", "fields", "opted_out_at", "not_on_whatsapp", "replied_stop"))
    iterator = contacts.iterator(FAN_OUT_CHUNK)
    # Chunk N is stored on a second connection while chunk N+1 is built (config/overlap.py): half the time.
    with Overlapped() as overlap:
        while chunk := list(islice(iterator, FAN_OUT_CHUNK)):
            recipients += len(chunk)
            # A STOP the receiver could not apply (the contact was made later, or the signal was lost) counts here.
            replied_stop = {row[1] for row in chunk if row[4] is None and row[6]}
            opt_out_phones(phones=list(replied_stop), source="reply")
            items = []
            for contact_id, phone, name, fields, opted_out_at, not_on_whatsapp, _ in chunk:
                if opted_out_at is not None or phone in replied_stop:
                    skipped["opted out"] += 1
                elif not_on_whatsapp:
                    skipped["not on WhatsApp"] += 1
                elif contact_id in made:
                    continue
                else:
                    values = texts.values_of(phone=phone, name=name, fields=fields)
                    try:
                        text = texts.render(campaign.text, values)
                    except (KeyError, ValueError, IndexError):
                        skipped["a placeholder has no value"] += 1
                        continue
                    send_at = next(times)
                    if expires_at is not None and send_at >= expires_at:
                        skipped["its send time is past the campaign's validity"] += 1
                        continue
                    items.append({
                        "phone": phone, "text": text, "instance": campaign.instance, "scheduled_at": send_at,
                        "expires_at": expires_at, "callback_url": campaign.callback_url,
                        "idempotency_key": idempotency.campaign_message_key(run_id=run.pk, contact_id=contact_id),
                    })
            for result in messaging.accept_messages(
                items=items, created_by=campaign.created_by, source=source, overlap=overlap,
                phones_are_normalized=True,  # contacts' phones
            ):
                if result.errors:  # (a message a concurrent trigger made first is returned, not an error)
                    skipped[f"invalid {next(iter(result.errors))}"] += 1
            _follow_campaign_state(run)
    created = OutboundMessage.objects.filter(source=source).count()
    CampaignRun.objects.filter(pk=run.pk).update(
        recipients=recipients, created=created, skipped=dict(skipped), prepared_at=timezone.now()
    )
    CampaignRun.objects.filter(pk=run.pk, status=RunStatus.PREPARING).update(status=RunStatus.RUNNING)
    _follow_campaign_state(run)
    log.info("campaign=%s run=%s prepared recipients=%s messages=%s skipped=%s", campaign.pk, run.number, recipients,
             created, dict(skipped))
    return CampaignRun.objects.get(pk=run.pk)


def _follow_campaign_state(run: CampaignRun) -> None:
    """A pause or cancel that came while the run was being prepared also holds or cancels what was made since."""
    status = Campaign.objects.filter(pk=run.campaign_id).values_list("status", flat=True).first()
    if status == CampaignStatus.PAUSED:
        CampaignRun.objects.filter(pk=run.pk, status__in=(RunStatus.PREPARING, RunStatus.RUNNING)).update(status=RunStatus.PAUSED)
        sources.hold_messages_from(source=run.source)
    elif status == CampaignStatus.CANCELLED:
        sources.cancel_messages_from(source=run.source)


def finish_runs() -> int:
    """Beat's tick: a prepared run with no message left waiting is completed; a campaign with no run under way and
    no next run is completed too (one with a next run is scheduled again). Returns how many runs it completed."""
    now = timezone.now()
    finished = 0
    for run in CampaignRun.objects.filter(status=RunStatus.RUNNING, prepared_at__isnull=False):
        if selectors.has_waiting_messages(source=run.source):
            continue
        if CampaignRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(status=RunStatus.COMPLETED, finished_at=now):
            finished += 1
            log.info("campaign=%s run=%s completed", run.campaign_id, run.number)
    busy = CampaignRun.objects.filter(status__in=(RunStatus.PREPARING, RunStatus.RUNNING, RunStatus.PAUSED))
    idle = Campaign.objects.filter(status=CampaignStatus.RUNNING).exclude(runs__in=busy)
    idle.filter(next_run_at__isnull=True).update(status=CampaignStatus.COMPLETED, updated_at=now)
    idle.filter(next_run_at__isnull=False).update(status=CampaignStatus.SCHEDULED, updated_at=now)
    return finished


def _send_times(campaign: Campaign, *, start: datetime):
    return pacing.send_times(
        start, per_minute=campaign.rate_per_minute, start=campaign.quiet_hours_start, end=campaign.quiet_hours_end,
        tz=pacing.zone(campaign.time_zone),
    )
