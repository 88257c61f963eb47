"""POST /contacts/import: a small file answered with its report, a large one followed by its status."""
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns import contact_import
from campaigns.models import Contact, ContactImport, ImportStatus
from campaigns.tests.test_contact_import import CSV
from tests_support import wait_for


def test_a_small_file_is_imported_during_the_request_and_answered_with_its_report(api):
    response = api.post("/contacts/import?tag=spring", {"file": SimpleUploadedFile("list.csv", CSV.encode())},
                        format="multipart")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["total_rows"], body["accepted"], body["rejected"], body["duplicates"]) == (
        "done", 6, 3, 2, 1)
    assert body["processed_rows"] == 3 and body["file_name"] == "list.csv"
    assert [(row["row"], row["reason"].split(":")[0]) for row in body["rejected_rows"]] == [(4, "phone"), (7, "phone")]
    assert Contact.objects.count() == 3
    assert set(Contact.objects.filter(tags__name="spring").values_list("phone", flat=True)) == {
        "+5511987651001", "+5511987651002", "+5511987651003"}
    assert Contact.objects.get(phone="+5511987651003").opt_out_source == "csv"


def test_the_file_may_be_the_body_itself(api):
    response = api.generic("POST", "/contacts/import?tag=vip", CSV.encode(), content_type="text/csv")

    assert response.status_code == 201, response.content
    assert response.json()["accepted"] == 3
    assert Contact.objects.filter(tags__name="vip").count() == 3


def test_a_large_file_is_imported_in_the_background_and_followed_by_its_status(api, celery_worker):
    rows = [f"+55 11 9{i // 9000:04d}-{1000 + i % 9000:04d},Person {i},{i % 28 + 1} May" for i in range(3000)]
    text = "phone,name,date\n" + "\n".join(rows) + "\nnot a phone,Nobody,1 May\n"
    assert len(text) > contact_import.SYNC_IMPORT_BYTES

    response = api.generic("POST", "/contacts/import?tag=big", text.encode(), content_type="text/csv")

    assert response.status_code == 202, response.content
    accepted = response.json()
    assert accepted["status"] in (ImportStatus.QUEUED, ImportStatus.RUNNING, ImportStatus.DONE)
    assert accepted["status_url"] == f"/contacts/import/{accepted['id']}"
    done = wait_for(lambda: (body := api.get(accepted["status_url"]).json())["status"] == "done" and body, timeout=30)
    assert (done["total_rows"], done["accepted"], done["rejected"], done["processed_rows"]) == (3001, 3000, 1, 3000)
    assert done["rejected_rows"][0]["row"] == 3002
    assert Contact.objects.filter(tags__name="big").count() == 3000


def test_a_file_that_cannot_be_imported_is_a_400_naming_the_file(api):
    no_phone = api.generic("POST", "/contacts/import", b"name,number\nAna,+5511987651001\n", content_type="text/csv")
    nul = api.generic("POST", "/contacts/import", b"phone\n+5511987651001\x00\n", content_type="text/csv")
    not_utf8 = api.post("/contacts/import", {"file": SimpleUploadedFile("x.csv", b"phone\n\xff\xfe\n")},
                        format="multipart")

    for response in (no_phone, nul, not_utf8):
        assert response.status_code == 400, response.content
        assert list(response.json()["error"]["fields"]) == ["file"]
    assert "no phone column" in no_phone.json()["error"]["fields"]["file"][0]
    assert not ContactImport.objects.exists() and not Contact.objects.exists()


def test_an_unknown_import_is_a_404_and_a_caller_without_the_role_gets_a_403(api, db):
    assert api.get("/contacts/import/999999").status_code == 404
    nobody = get_user_model().objects.create_user(username="viewer", password="secret-pass-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=nobody).key}")

    assert client.generic("POST", "/contacts/import", CSV.encode(), content_type="text/csv").status_code == 403
    assert not Contact.objects.exists()
