"""CSV in and out: the preview's report, the background import with its progress, and the export."""
import pytest
from django.core.exceptions import ValidationError

from campaigns import contact_import
from campaigns.models import Contact, ContactImport, ImportStatus
from tests_support import wait_for

CSV = """phone,name,date,tags,opted_out
+55 11 98765-1001,Ana,12 May,vip;sp,
5511987651002,Bruno,13 May,vip,
not a phone,Nobody,14 May,,
+55 11 98765-1001,Ana Maria,,late,
+55 11 98765-1003,Carla,15 May,,yes
,Empty,16 May,,
"""


def test_the_preview_reports_bad_rows_and_merges_duplicates_without_writing_contacts(db):
    upload = contact_import.preview_import(csv_text=CSV, file_name="list.csv")

    assert (upload.total_rows, upload.accepted, upload.rejected, upload.duplicates) == (6, 3, 2, 1)
    assert [(row["row"], row["reason"].split(":")[0]) for row in upload.report["rejected_rows"]] == [(4, "phone"), (7, "phone")]
    assert upload.status == ImportStatus.PREVIEW
    assert not Contact.objects.exists()


def test_a_file_without_a_phone_column_is_refused_naming_it(db):
    with pytest.raises(ValidationError) as refused:
        contact_import.preview_import(csv_text="name,number\nAna,+5511987651001\n")
    assert "no phone column" in refused.value.message_dict["file"][0]
    assert not ContactImport.objects.exists()


def test_the_import_runs_in_the_background_and_merges_into_known_contacts(celery_worker):
    Contact.objects.create(phone="+5511987651002", name="Bruno", fields={"city": "Lima"})
    upload = contact_import.preview_import(csv_text=CSV, file_name="list.csv", tag="imported")

    assert contact_import.start_import(import_id=upload.pk)
    assert not contact_import.start_import(import_id=upload.pk)  # a second click starts nothing
    done = wait_for(lambda: (u := ContactImport.objects.get(pk=upload.pk)).status == ImportStatus.DONE and u, timeout=20)

    assert (done.processed_rows, done.accepted, done.rejected, done.duplicates) == (3, 3, 2, 1)
    ana = Contact.objects.get(phone="+5511987651001")
    assert ana.name == "Ana Maria" and ana.fields == {"date": "12 May"}  # the later row wins, empty cells do not erase
    assert set(ana.tags.values_list("name", flat=True)) == {"vip", "sp", "late", "imported"}
    bruno = Contact.objects.get(phone="+5511987651002")
    assert bruno.fields == {"city": "Lima", "date": "13 May"}
    carla = Contact.objects.get(phone="+5511987651003")
    assert carla.opted_out_at is not None and carla.opt_out_source == "csv"
    assert Contact.objects.count() == 3


def test_the_export_reads_back_as_the_same_contacts(db):
    contact_import.preview_import(csv_text=CSV)
    upload = ContactImport.objects.get()
    ContactImport.objects.filter(pk=upload.pk).update(status=ImportStatus.QUEUED)
    contact_import.import_contacts(import_id=upload.pk)

    exported = contact_import.export_csv(Contact.objects.order_by("phone"))
    again = contact_import.read_csv(exported)

    assert exported.splitlines()[0] == "phone,name,tags,opted_out,date"
    assert {phone: (row.name, row.fields, row.tags, row.opted_out) for phone, row in again.rows.items()} == {
        "+5511987651001": ("Ana Maria", {"date": "12 May"}, {"vip", "sp", "late"}, False),
        "+5511987651002": ("Bruno", {"date": "13 May"}, {"vip"}, False),
        "+5511987651003": ("Carla", {"date": "15 May"}, set(), True),
    }
