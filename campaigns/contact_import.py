"""Contacts from a CSV file and back: read and check it (the preview), import it in the background, export.

Hand-written on the csv module rather than django-import-export: the rules that matter here (phones normalised the
way messages normalise them, duplicates merged by phone, a row's extra columns kept as template fields, tags and
opt-outs merged into existing contacts, never removed) are a few lines each, and a library's resource classes
would hide them behind its own import workflow and admin templates.

The file has a header row. ``phone`` is required; ``name``, ``tags`` (separated by ``;``) and ``opted_out``
(yes/true/1) are read when present; every other column becomes a field for templates.
"""
import csv
import io
import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.models import Contact, ContactImport, ImportStatus, Tag
from messaging.phones import normalize_phone

log = logging.getLogger("campaigns")

REQUIRED_COLUMNS = ("phone",)
KNOWN_COLUMNS = ("phone", "name", "tags", "opted_out")
TRUE_WORDS = {"1", "yes", "y", "true", "si", "sí", "x"}
CHUNK = 1000
REPORTED_REJECTIONS = 1000  # rows listed in the report; all are counted
SAMPLE_ROWS = 10
SYNC_IMPORT_BYTES = 64 * 1024  # about 1,500 rows: an upload this small is imported during its request


@dataclass
class ParsedRow:
    phone: str
    name: str = ""
    fields: dict = field(default_factory=dict)
    tags: set = field(default_factory=set)
    opted_out: bool = False


@dataclass
class ParsedFile:
    columns: list[str]
    rows: dict[str, ParsedRow]  # by phone, duplicates merged
    total_rows: int
    duplicates: int
    rejected: list[dict]  # {"row": n, "phone": "...", "reason": "..."}

    @property
    def report(self) -> dict:
        return {
            "columns": self.columns,
            "rejected_rows": self.rejected[:REPORTED_REJECTIONS],
            "sample": [
                {"phone": row.phone, "name": row.name, "fields": row.fields, "tags": sorted(row.tags),
                 "opted_out": row.opted_out}
                for row in list(self.rows.values())[:SAMPLE_ROWS]
            ],
        }


def read_csv(text: str) -> ParsedFile:
    """Check every row of a CSV file; write nothing. A file without a phone column, or that is no CSV file (a NUL
    byte, an unclosed quote running past the csv module's field limit), is refused (ValidationError)."""
    try:
        return _read_csv(text)
    except csv.Error as error:
        raise ValidationError({"file": [f"Not a CSV file: {error}."]})


def _read_csv(text: str) -> ParsedFile:
    if "\x00" in text:
        raise csv.Error("it has a NUL character")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValidationError({"file": [
            f"The file has no {', '.join(missing)} column (its header row has: {', '.join(columns) or 'nothing'})."
        ]})
    reader.fieldnames = columns
    rows: dict[str, ParsedRow] = {}
    rejected: list[dict] = []
    duplicates = total = 0
    for number, raw in enumerate(reader, start=2):  # row 1 is the header
        total += 1
        if None in raw:  # more cells than headers
            rejected.append({"row": number, "phone": raw.get("phone") or "", "reason": "More cells than columns."})
            continue
        raw = {key: (value or "").strip() for key, value in raw.items()}
        try:
            phone = normalize_phone(raw.get("phone", ""))
        except ValidationError as error:
            rejected.append({"row": number, "phone": raw.get("phone", ""), "reason": f"phone: {error.messages[0]}"})
            continue
        row = rows.get(phone)
        if row is None:
            row = rows[phone] = ParsedRow(phone=phone)
        else:
            duplicates += 1  # merged: later values win, tags add up
        row.name = raw.get("name") or row.name
        row.fields.update({key: value for key, value in raw.items() if key not in KNOWN_COLUMNS and key and value})
        row.tags |= {tag.strip() for tag in raw.get("tags", "").split(";") if tag.strip()}
        row.opted_out = row.opted_out or raw.get("opted_out", "").lower() in TRUE_WORDS
    return ParsedFile(columns=columns, rows=rows, total_rows=total, duplicates=duplicates, rejected=rejected)


def preview_import(*, csv_text: str, file_name: str = "", tag: str = "", created_by=None) -> ContactImport:
    """Store an upload with its report (accepted, rejected and why, duplicates); nothing is imported yet.
    Raises ValidationError for a file without a phone column."""
    parsed = read_csv(csv_text)
    return ContactImport.objects.create(
        file_name=file_name, csv_text=csv_text, tag=tag.strip(), created_by=created_by,
        total_rows=parsed.total_rows, accepted=len(parsed.rows), rejected=len(parsed.rejected),
        duplicates=parsed.duplicates, report=parsed.report,
    )


def upload_contacts(*, csv_text: str, file_name: str = "", tag: str = "", created_by=None) -> ContactImport:
    """Import a file in one step (the API's upload, no preview to confirm). One of up to SYNC_IMPORT_BYTES is
    checked and written before this returns (status done, with its report); a larger one is stored as it came and
    queued for the background import, which checks it, writes it in chunks and fills in its report, so the
    request never waits for 100,000 rows. Raises ValidationError for a file without a phone column."""
    if len(csv_text) <= SYNC_IMPORT_BYTES:
        upload = preview_import(csv_text=csv_text, file_name=file_name, tag=tag, created_by=created_by)
        ContactImport.objects.filter(pk=upload.pk, status=ImportStatus.PREVIEW).update(status=ImportStatus.QUEUED)
        return import_contacts(import_id=upload.pk)
    read_csv(csv_text.split("\n", 1)[0])  # the header: a phone column, or refused now rather than in the worker
    upload = ContactImport.objects.create(
        file_name=file_name, csv_text=csv_text, tag=tag.strip(), created_by=created_by, status=ImportStatus.PREVIEW,
    )
    start_import(import_id=upload.pk)
    return ContactImport.objects.get(pk=upload.pk)


def start_import(*, import_id: int) -> bool:
    """Preview -> queued, and the import task published after commit; False when it was already started."""
    from campaigns import tasks

    with transaction.atomic():
        started = ContactImport.objects.filter(pk=import_id, status=ImportStatus.PREVIEW).update(status=ImportStatus.QUEUED)
        if started:
            transaction.on_commit(lambda: tasks.import_contacts.delay(import_id))
    return bool(started)


def import_contacts(*, import_id: int) -> ContactImport | None:
    """Write a queued upload's contacts in chunks of CHUNK, counting progress on the import row. New phones are
    created, known ones merged (name and fields updated, tags added, an opt-out kept). Returns None when another
    worker has it."""
    if not ContactImport.objects.filter(pk=import_id, status=ImportStatus.QUEUED).update(status=ImportStatus.RUNNING):
        return None
    upload = ContactImport.objects.get(pk=import_id)
    try:
        parsed = read_csv(upload.csv_text)
        rows = list(parsed.rows.values())
        ContactImport.objects.filter(pk=import_id).update(  # an upload not previewed learns its counts here
            total_rows=parsed.total_rows, accepted=len(rows), rejected=len(parsed.rejected),
            duplicates=parsed.duplicates, report=parsed.report,
        )
        extra_tag = upload.tag
        for start in range(0, len(rows), CHUNK):
            _write_contacts(rows[start:start + CHUNK], extra_tag=extra_tag)
            ContactImport.objects.filter(pk=import_id).update(processed_rows=min(start + CHUNK, len(rows)))
    except Exception:
        log.exception("contact_import=%s failed", import_id)
        ContactImport.objects.filter(pk=import_id).update(status=ImportStatus.FAILED, finished_at=timezone.now())
        raise
    ContactImport.objects.filter(pk=import_id).update(
        status=ImportStatus.DONE, finished_at=timezone.now(), csv_text="", processed_rows=len(rows),
        total_rows=parsed.total_rows, accepted=len(rows), rejected=len(parsed.rejected), duplicates=parsed.duplicates,
        report=parsed.report,
    )
    log.info("contact_import=%s done accepted=%s rejected=%s duplicates=%s", import_id, len(rows),
             len(parsed.rejected), parsed.duplicates)
    return ContactImport.objects.get(pk=import_id)


def _write_contacts(rows: list[ParsedRow], *, extra_tag: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        existing = {contact.phone: contact for contact in Contact.objects.select_for_update().filter(phone__in=[r.phone for r in rows])}
        new, changed = [], []
        for row in rows:
            contact = existing.get(row.phone)
            if contact is None:
                new.append(Contact(
                    phone=row.phone, name=row.name, fields=row.fields, created_at=now, updated_at=now,
                    opted_out_at=now if row.opted_out else None, opt_out_source="csv" if row.opted_out else "",
                ))
                continue
            contact.name = row.name or contact.name
            contact.fields = {**contact.fields, **row.fields}
            if row.opted_out and contact.opted_out_at is None:
                contact.opted_out_at, contact.opt_out_source = now, "csv"
            contact.updated_at = now
            changed.append(contact)
        Contact.objects.bulk_create(new, ignore_conflicts=True)
        Contact.objects.bulk_update(changed, ["name", "fields", "opted_out_at", "opt_out_source", "updated_at"])
        names = {tag for row in rows for tag in row.tags} | ({extra_tag} if extra_tag else set())
        if names:
            Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
            tags = dict(Tag.objects.filter(name__in=names).values_list("name", "pk"))
            ids = dict(Contact.objects.filter(phone__in=[r.phone for r in rows]).values_list("phone", "pk"))
            links = [
                Contact.tags.through(contact_id=ids[row.phone], tag_id=tags[name])
                for row in rows if row.phone in ids
                for name in row.tags | ({extra_tag} if extra_tag else set())
            ]
            Contact.tags.through.objects.bulk_create(links, ignore_conflicts=True)


def export_csv(contacts) -> str:
    """Contacts as a CSV file the import reads back: phone, name, tags, opted_out, then every field seen."""
    contacts = list(contacts.prefetch_related("tags"))
    extra = sorted({key for contact in contacts for key in contact.fields})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*KNOWN_COLUMNS, *extra])
    for contact in contacts:
        writer.writerow([
            contact.phone, contact.name, ";".join(tag.name for tag in contact.tags.all()),
            "yes" if contact.opted_out_at else "", *(contact.fields.get(key, "") for key in extra),
        ])
    return out.getvalue()
