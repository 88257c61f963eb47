"""One shape for every API error, so clients parse failures the same way:

    {"success": false, "error": {"code": "invalid", "message": "phone: ...", "fields": {"phone": ["..."]}}}

``fields`` is present for validation errors and names each offending field as the client sent it.
"""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from messaging.idempotency import KeyReused

# Services speak the domain's words; the API's fields are named after the JSON clients send.
SERVICE_TO_API_FIELDS = {"text": "message", "instance": "instance_name", "idempotency_key": "Idempotency-Key"}


# How long a client should wait before trying again after a 503 for an unreachable database.
DATABASE_RETRY_AFTER_SECONDS = 5


def exception_handler(exc, context):
    if isinstance(exc, (OperationalError, InterfaceError)):
        # PostgreSQL is down or unreachable (connect_timeout bounds the wait): nothing was stored, so the
        # client may simply try again; a 503, not a 500, so it knows to.
        return Response(
            envelope("database_unavailable", "The database is unavailable; nothing was stored. Try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(_too_large_body(), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
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


def envelope(code: str, message: str) -> dict:
    return {"success": False, "error": {"code": code, "message": message}}


def _too_large_body() -> dict:
    return envelope("too_large", f"The body is over {settings.API_MAX_BODY_BYTES:,} bytes, more than the largest valid request.")


@csrf_exempt  # a POST to no route is a 404, not CsrfViewMiddleware's HTML 403
def not_found(request, *args, **kwargs):
    """Any path no route matched (``/messages/abc``, ``/messages/-1``): the JSON envelope, not Django's page."""
    return JsonResponse(envelope("not_found", f"No such path: {request.path}"), status=404)


# Django's last-resort pages (config/urls.py): the API's envelope everywhere but in the admin, which keeps its own.


def _is_admin(request) -> bool:
    return request.path.startswith("/admin/")


def bad_request(request, exception, *args, **kwargs):
    if _is_admin(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(_too_large_body(), status=413)
    return JsonResponse(envelope("bad_request", "The request could not be read."), status=400)


def permission_denied(request, exception, *args, **kwargs):
    if _is_admin(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(envelope("permission_denied", "You do not have permission to do this."), status=403)


def page_not_found(request, exception, *args, **kwargs):
    if _is_admin(request):
        return defaults.page_not_found(request, exception)
    return not_found(request)


def server_error(request, *args, **kwargs):
    if _is_admin(request):
        return defaults.server_error(request)
    return JsonResponse(envelope("server_error", "Something went wrong on our side; it was logged."), status=500)


class BodySizeLimitMiddleware:
    """Refuse a body larger than the largest valid request (a full bulk request) before anything reads it, with
    the API's 413 rather than Django's 400 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.API_MAX_BODY_BYTES and not _is_admin(request):
            return JsonResponse(_too_large_body(), status=413)
        return self.get_response(request)
