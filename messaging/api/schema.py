"""How /schema describes the API's errors: every operation lists the error answers it shares with the others, in
the one envelope of messaging/api/errors.py. A postprocessing hook adds them (SPECTACULAR_SETTINGS), so a new
view cannot forget them; a view documents only the errors that are its own (409 of an action, 422 of a reused
Idempotency-Key) with ``error(...)`` below."""
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import AllowAny

from messaging.api.serializers import ErrorEnvelopeSerializer

ERROR_ENVELOPE = "ErrorEnvelope"  # the component drf-spectacular names after ErrorEnvelopeSerializer


def error(description: str) -> OpenApiResponse:
    """An error answer of one view, for ``extend_schema(responses=...)``."""
    return OpenApiResponse(ErrorEnvelopeSerializer, description=description)


IDEMPOTENCY_KEY_REUSED = error("The Idempotency-Key was already used for another request.")

BAD_REQUEST = "The request could not be read, or a parameter or field is invalid (`error.fields` names each)."
NOT_AUTHENTICATED = "No credentials, or a key or token that is unknown or revoked."
FORBIDDEN = "The caller's role does not allow this operation."
NOT_FOUND = "No such message, task or path (also a list cursor that was not issued)."
METHOD_NOT_ALLOWED = "The path does not answer this method (the Allow header lists those it does)."
TOO_LARGE = "The body is larger than the largest valid request."
UNSUPPORTED_MEDIA_TYPE = "The body is not JSON (or a form)."
THROTTLED = "Too many requests from this caller; retry after the Retry-After header's seconds."


def add_shared_errors(result, generator, request, public):
    """Postprocessing hook: on each operation, the errors its view can answer that it does not document itself."""
    schemas = result.get("components", {}).get("schemas", {})
    assert ERROR_ENVELOPE in schemas, f"no {ERROR_ENVELOPE} component: a view should document an error with error()"
    views = {(path, method.lower()): callback.cls for path, _, method, callback in generator.endpoints}
    for path, operations in result["paths"].items():
        for method, operation in operations.items():
            view = views.get((path, method))
            for code, description in shared_errors(view, path, operation).items():
                operation["responses"].setdefault(str(code), {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_ENVELOPE}"}}},
                })
            operation["responses"] = dict(sorted(operation["responses"].items()))
    return result


def shared_errors(view, path: str, operation: dict) -> dict[int, str]:
    errors = {400: BAD_REQUEST, 405: METHOD_NOT_ALLOWED, 413: TOO_LARGE}
    if view is None or "{" in path or getattr(view, "pagination_class", None):  # an id, or a list cursor
        errors[404] = NOT_FOUND
    if view is None or view.authentication_classes:
        errors[401] = NOT_AUTHENTICATED
    if view is None or not all(issubclass(permission, AllowAny) for permission in view.permission_classes):
        errors[403] = FORBIDDEN
    if "requestBody" in operation:
        errors[415] = UNSUPPORTED_MEDIA_TYPE
    if view is None or view.throttle_classes:
        errors[429] = THROTTLED
    return errors
