"""The webhook receiver: Evolution API posts here. Check the secret, parse, store raw, answer; the work is a task.

POST /webhooks/evolution/{instance} and, when the webhook is set with ``byEvents``, /webhooks/evolution/{instance}/
{event} (messages-upsert, messages-update, send-message, connection-update). A missing or wrong secret is 401 and
a body that is not an Evolution envelope (or names another instance or event) is 400: both write nothing, and
Evolution does not retry either. A retry of a stored event answers 200 with ``"duplicate": true``.
"""
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from evolution import webhooks
from inbound import services
from messaging.api.errors import envelope

log = logging.getLogger("inbound")


@csrf_exempt  # Evolution authenticates with the secret it sends back, not with a session
@require_POST
def evolution_webhook(request, instance: str, event: str | None = None):
    if not services.authenticate(instance=instance, secret=request.headers.get(webhooks.SECRET_HEADER)):
        log.warning("webhook for instance=%s refused: missing or wrong secret from %s", instance,
                    request.META.get("REMOTE_ADDR"))
        return JsonResponse(envelope("not_authenticated", "Missing or wrong webhook secret."), status=401)
    try:
        parsed = webhooks.parse_envelope(request.body, path_event=event)
        if parsed.instance != instance:
            raise webhooks.MalformedWebhook(f"the body is for instance {parsed.instance!r}, the path for {instance!r}")
    except webhooks.MalformedWebhook as error:
        log.warning("webhook for instance=%s refused: %s", instance, error)
        return JsonResponse(envelope("invalid", f"Not an Evolution webhook: {error}"), status=400)
    stored, created = services.store_event(envelope=parsed, body=parsed.payload)
    return JsonResponse({"received": True, "duplicate": not created, "id": stored.pk if stored else None})
