"""One shape for every API error, so clients parse failures the same way:

    {"success": false, "error": {"code": "invalid", "message": "phone: ...", "fields": {"phone": ["..."]}}}

``fields`` is present for validation errors and names each offending field as the client sent it.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

# Services speak the domain's words; the API's fields are named after the JSON clients send.
SERVICE_TO_API_FIELDS = {"text": "message", "instance": "instance_name", "idempotency_key": "Idempotency-Key"}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        fields = {SERVICE_TO_API_FIELDS.get(name, name): errors for name, errors in fields.items()}
        first_field, first_errors = next(iter(fields.items()))
        first = first_errors[0] if isinstance(first_errors, list) and first_errors else first_errors
        error = {"code": "invalid", "message": f"{first_field}: {first}", "fields": fields}
    elif isinstance(exc, exceptions.ParseError):
        error = {"code": "parse_error", "message": str(exc.detail), "fields": {"body": [str(exc.detail)]}}
    else:
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        error = {"code": getattr(exc, "default_code", "error"), "message": str(detail)}
    response.data = {"success": False, "error": error}
    return response
