"""The API answers as /schema says it does: schemathesis runs every operation, with valid and invalid input, as an
operator (a DRF token) and as an API client (a wac_ key), with all of its checks: no server error, no answer that
breaks its documented schema, no status code the schema does not list."""
import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from access.models import ApiClient
from config.wsgi import application


def test_the_schema_is_valid_and_generates_without_warnings(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yml"))


def test_every_operation_documents_the_errors_it_shares(api):
    schema = api.get("/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"400", "405", "413", "429"} | ({"401", "403"} if path != "/health" else set())
            assert expected <= set(responses), f"{method.upper()} {path}: {sorted(responses)}"
            assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope") or (
                path == "/messages/bulk"
            )


@pytest.fixture
def api_schema(db, sandbox_settings):
    """The schema, and the requests, in process through the WSGI app gunicorn serves, in this test's transaction.
    As Django's test client does, a request does not close the database connection (the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/schema", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def operator_token(user):
    return f"Token {Token.objects.create(user=user).key}"


@pytest.fixture
def api_client_key(db):
    _client, key = ApiClient.objects.create_client(name="schemathesis")
    return f"Bearer {key}"


# Bounded and seeded: 25 cases per operation and generation mode, the same ones on every run, so CI is repeatable.
BOUNDED = hypothesis_settings(
    max_examples=25,
    derandomize=True,
    database=None,  # nothing written under .hypothesis/
    deadline=None,  # a request's time is not the property under test
    suppress_health_check=list(HealthCheck),
)


# Written reason for the one adapted check: a body the schema accepts can still carry content only the service
# can judge (a phone that is no number, an instance the console does not send through, a send time in the past, a
# text of invisible characters). JSON Schema cannot say "a real phone number", so on the two sending operations a
# schema-valid body may be refused with the validation error (400, code "invalid", naming the field); anything
# else a valid body gets is judged by schemathesis's own positive_data_acceptance. A campaign's body is the same
# case (its recipients' phones, its instance, a template placeholder some recipients have no value for), and so is
# a contact import's file: a schema says "a file", never "a CSV file with a phone column".
SERVICE_VALIDATES_CONTENT = {
    ("POST", "/messages"), ("POST", "/messages/bulk"), ("POST", "/campaigns"), ("POST", "/contacts/import"),
}


def positive_data_acceptance_unless_the_service_refuses_the_content(ctx, response, case):
    if (case.method, case.path) in SERVICE_VALIDATES_CONTENT and response.status_code == 400 and _names_a_field(response):
        return None
    return positive_data_acceptance(ctx, response, case)


def _names_a_field(response) -> bool:
    error = response.json()["error"]
    return error["code"] == "invalid" and bool(error.get("fields"))


def call_and_validate(case, authorization):
    case.call_and_validate(
        headers={"Authorization": authorization},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[positive_data_acceptance_unless_the_service_refuses_the_content],
    )


@schema.parametrize()
@BOUNDED
def test_the_api_answers_an_operator_as_its_schema_says(case, operator_token):
    call_and_validate(case, operator_token)


@schema.parametrize()
@BOUNDED
def test_the_api_answers_an_api_client_as_its_schema_says(case, api_client_key):
    call_and_validate(case, api_client_key)


# What schemathesis found, each pinned by a test of its own.


def test_a_post_to_no_route_is_a_json_404_not_a_csrf_page(api):
    response = api.post("/messages/%C2%84/cancel")  # a token caller sends no CSRF cookie
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("limit", ["null", "0", "-1", "1.5", ""])
def test_a_limit_that_is_no_page_size_is_a_400_naming_it(api, limit):
    response = api.get("/messages", {"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"limit": ["A whole number from 1 up."]}


def test_a_limit_over_the_largest_page_gives_the_largest_page(api):
    assert api.get("/messages", {"limit": "99999999999999999999"}).status_code == 200


def test_an_empty_date_filter_is_a_400_and_an_empty_status_or_phone_means_any(api):
    response = api.get("/messages", {"created_before": ""})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"created_before"}
    assert api.get("/messages", {"status": "", "phone": ""}).status_code == 200
