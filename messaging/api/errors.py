"""One shape for every API error, so clients parse failures the same way:

    {"success": false, "error": {"code": "invalid", "message": "phone: ...", "fields": {"phone": ["..."]}}}

``fields`` is present for validation errors and names each offending field as the client sent it.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from messaging.idempotency import KeyReused

# Services speak the domain's words; the API's fields are named after the JSON clients send.
SERVICE_TO_API_FIELDS = {"text": "message", "instance": "instance_name", "idempotency_key": "Idempotency-Key"}


def exception_handler(exc, context):
    if isinstance(exc, KeyReused):
        # Stripe's rule: a key names one request. 422, not the first message, so the client sees its bug.
        return Response(
            {"success": False, "error": {
                "code": "idempotency_key_reused", "message": f"Idempotency-Key: {exc}",
                "fields": {"Idempotency-Key": [str(exc)]},
            }},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
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


def not_found(request, *args, **kwargs):
    """Any path no route matched (``/messages/abc``, ``/messages/-1``): the JSON envelope, not Django's page."""
    return JsonResponse(
        {"success": False, "error": {"code": "not_found", "message": f"No such path: {request.path}"}}, status=404
    )
