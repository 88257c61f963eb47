"""HTTP API. Views are thin: parse, call a service or selector, render."""
import logging
import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import idempotency, maintenance, selectors, services
from messaging.api.schema import IDEMPOTENCY_KEY_REUSED, error
from messaging.api.serializers import (
    BulkRejectedSerializer,
    BulkRequestSerializer,
    BulkResultSerializer,
    MessageCreateSerializer,
    MessageDetailSerializer,
    MessageFilterSerializer,
    MessageSerializer,
    read_bulk_item,
)
from messaging.api.errors import SERVICE_TO_API_FIELDS
from messaging.api.permissions import SCHEDULE, MessageActionPermission, MessagePermission, StaffWithRequeuePermission
from messaging.health import system_health
from messaging.models import MessageStatus, OutboundMessage

log = logging.getLogger("messaging.api")


class RootView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request):
        links = {name: request.build_absolute_uri(reverse(name)) for name in ("messages", "health", "docs", "schema")}
        links["admin"] = request.build_absolute_uri(reverse("admin:index"))
        return Response({"service": "WhatsApp messaging console", "links": links})


class HealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        summary="Database, broker and Evolution instance health; 503 when any is down",
        responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        # Up or down per part for anyone; error texts and latencies only for staff (system_health decides).
        health = system_health(request)
        code = status.HTTP_200_OK if health["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(health, status=code)


class MessageCursorPagination(CursorPagination):
    ordering = "-id"  # no COUNT(*) on a table of millions
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request):
        # DRF trusts a well-encoded cursor's position to be a number; a forged one must be a 404, not a 500.
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                int(cursor.position)
            return cursor
        except (TypeError, ValueError):
            raise NotFound(self.invalid_cursor_message)

    def get_page_size(self, request):
        # DRF falls back to the default page size for a limit it cannot read; the caller's mistake is a 400 instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]+", raw) or not raw.strip("0"):
            raise ValidationError({self.page_size_query_param: ["A whole number from 1 up."]})
        return self.max_page_size if len(raw) > 9 else min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Messages per page, {self.page_size} unless given; at most {self.max_page_size} are returned."
        return parameters


# Building a ModelSerializer's fields costs more than rendering them; POST /messages renders with one instance
# built once per process (to_representation only reads the fields, so threads can share it).
_MESSAGE_REPRESENTATION = MessageSerializer()
# Likewise for reading the body: a serializer instance deep-copies its seven fields (0.2 ms of CPU a request), and
# run_validation keeps nothing on the instance, so one is shared; is_valid would store the result on it.
_MESSAGE_BODY = MessageCreateSerializer()


def _read_message_body(data) -> dict:
    """POST /messages' body, validated as ``MessageCreateSerializer(data=data).is_valid(raise_exception=True)``."""
    if not isinstance(data, dict):
        # is_valid's own answer for a body that is not an object (its "errors" rewrites DRF's "null" error)
        serializer = MessageCreateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
    return _MESSAGE_BODY.run_validation(data)


class MessageListCreateView(ListAPIView):
    permission_classes = [MessagePermission]
    throttle_scope = "messages"  # its POST counts against API_MESSAGE_RATE (access.throttles.MessageRateThrottle)
    pagination_class = MessageCursorPagination
    serializer_class = MessageSerializer

    @extend_schema(
        summary="Accept a message for sending",
        request={"application/json": MessageCreateSerializer},
        responses={202: MessageSerializer, 200: MessageSerializer, 422: IDEMPOTENCY_KEY_REUSED},
        parameters=[OpenApiParameter(
            "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
            description="A repeat with the same key and body returns the first message (200); the same key with "
                        "another body is a 422.",
        )],
    )
    def post(self, request):
        idempotency_key = idempotency.clean_key(
            request.headers.get("Idempotency-Key"), owner=request.user, field="Idempotency-Key"
        )
        log.info("POST /messages received user=%s idempotency_key=%s", request.user.pk, idempotency_key)
        body = _read_message_body(request.data)
        if body.get("scheduled_at") is not None:
            require_schedule_permission(request.user)
        if body.get("callback_url"):
            require_callback_secret(request.user)
        message, created = services.accept_message(
            phone=body["phone"],
            text=body["message"],
            instance=body.get("instance_name"),
            scheduled_at=body.get("scheduled_at"),
            expires_at=body.get("expires_at"),
            valid_for_seconds=body.get("valid_for_seconds"),
            idempotency_key=idempotency_key,
            created_by=request.user,
            callback_url=body.get("callback_url"),
        )
        code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(_MESSAGE_REPRESENTATION.to_representation(message), status=code)

    @extend_schema(summary="List messages, newest first", parameters=[MessageFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = MessageFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.message_list(user=self.request.user, **filters.validated_data)


class MessageBulkCreateView(APIView):
    permission_classes = [MessagePermission]
    throttle_scope = "messages"  # its POST counts against API_MESSAGE_RATE (access.throttles.MessageRateThrottle)

    @extend_schema(
        summary=f"Accept up to {services.BULK_MAX_MESSAGES} messages in one request",
        description=(
            'Body: {"messages": [{"phone", "message", "instance_name"?, "scheduled_at"?}, ...]}. Each item is '
            "validated on its own; the answer lists per item (in order) its id and task_id, or its field errors. "
            "Accepted items are stored and enqueued; rejected ones write nothing. 202 when at least one item was "
            "accepted, 400 when none was."
        ),
        request={"application/json": BulkRequestSerializer},
        responses={
            202: BulkResultSerializer,
            200: OpenApiResponse(BulkResultSerializer, description="A repeat of a keyed request: nothing new."),
            400: OpenApiResponse(BulkRejectedSerializer, description="No item was accepted, or the body is not a "
                                 "list of messages; error.fields.messages has each item's errors by index."),
            422: IDEMPOTENCY_KEY_REUSED,
        },
        parameters=[OpenApiParameter(
            "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
            description="Item n is stored under key#n: a repeat of the request creates nothing new (200); the same "
                        "key with another body is a 422.",
        )],
    )
    def post(self, request):
        raw_items = request.data.get("messages") if isinstance(request.data, dict) else None
        if not isinstance(raw_items, list) or not raw_items:
            raise ValidationError({"messages": ["Expected a non-empty list of messages."]})
        if len(raw_items) > services.BULK_MAX_MESSAGES:
            raise ValidationError({"messages": [f"Send at most {services.BULK_MAX_MESSAGES} messages per request."]})
        request_key = idempotency.clean_key(
            request.headers.get("Idempotency-Key"), owner=request.user, field="Idempotency-Key",
            max_length=idempotency.BULK_REQUEST_KEY_MAX_LENGTH,
        )
        log.info("POST /messages/bulk received user=%s items=%s idempotency_key=%s", request.user.pk, len(raw_items), request_key)
        shaped = [read_bulk_item(raw) for raw in raw_items]
        valid = []
        for index, (values, errors) in enumerate(shaped):
            if errors is None:
                if request_key:  # item n of a keyed request is "key#n": a repeat finds each one
                    values["idempotency_key"] = idempotency.bulk_item_key(request_key, index)
                valid.append(values)
        if any(values.get("scheduled_at") is not None for values in valid):
            require_schedule_permission(request.user)
        if any(values.get("callback_url") for values in valid):
            require_callback_secret(request.user)
        outcomes = services.accept_messages(items=valid, created_by=request.user, one_request=request_key is not None)
        stored = iter(outcomes)
        results = []
        for index, (values, errors) in enumerate(shaped):
            if errors is None:
                outcome = next(stored)
                errors = outcome.errors and {SERVICE_TO_API_FIELDS.get(k, k): v for k, v in outcome.errors.items()}
            if errors:
                results.append({"index": index, "errors": errors})
            else:
                message = outcome.message
                results.append({"index": index, "id": message.pk, "task_id": message.task_id or None, "status": message.status})
        accepted = sum(1 for result in results if "id" in result)
        created = sum(1 for outcome in outcomes if outcome.created and outcome.message is not None)
        body = {"success": accepted > 0, "accepted": accepted, "rejected": len(results) - accepted, "results": results}
        if not accepted:  # the usual error shape too, so clients that only read "error" understand it
            first = results[0]
            field, problems = next(iter(first["errors"].items()))
            body["error"] = {
                "code": "invalid",
                "message": f"no message was accepted; messages[{first['index']}].{field}: {problems[0]}",
                "fields": {"messages": {str(result["index"]): result["errors"] for result in results}},
            }
        if not accepted:
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        # A repeat of a keyed request made nothing new: 200, as for one message.
        return Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class MessageDetailView(APIView):
    permission_classes = [MessagePermission]

    @extend_schema(summary="A message with every send attempt", responses=MessageDetailSerializer)
    def get(self, request, message_id: int):
        try:
            message = selectors.message_with_attempts(user=request.user, message_id=message_id)
        except OutboundMessage.DoesNotExist:
            raise NotFound(f"No message with id {message_id}.")
        return Response(MessageDetailSerializer(message).data)


# A send task's state is its message's: the row is the record, and Celery's own result says only that the task
# ran (a message that failed for good ends a task that returned normally).
TASK_STATE_OF_STATUS = {
    MessageStatus.SCHEDULED: "PENDING",
    MessageStatus.QUEUED: "PENDING",
    MessageStatus.SENDING: "STARTED",
    MessageStatus.RETRYING: "RETRY",
    MessageStatus.SENT: "SUCCESS",
    MessageStatus.FAILED: "FAILURE",
    MessageStatus.CANCELLED: "REVOKED",
    MessageStatus.EXPIRED: "REVOKED",  # never sent, as a revoked task
}


class TaskView(APIView):
    permission_classes = [MessagePermission]

    @extend_schema(
        summary="Celery state of a send task, read from its message",
        description="PENDING, STARTED, RETRY, SUCCESS, FAILURE (failed for good) or REVOKED (cancelled or expired); 404 for "
                    "an id the console never issued.",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, task_id: str):
        message = selectors.message_of_task(user=request.user, task_id=task_id)
        if message is None:
            raise NotFound(f"No send task with id {task_id!r}.")
        result = {"message_id": message.pk, "status": message.status, "attempt_count": message.attempt_count}
        if message.last_error_kind:
            result.update(error_kind=message.last_error_kind, error=message.last_error)
        return Response({
            "task_id": task_id, "state": TASK_STATE_OF_STATUS[message.status], "result": result, "message_id": message.pk,
        })


class MessageActionView(APIView):
    """The operator actions of the admin, for callers with the same permissions."""

    permission_classes = [MessageActionPermission]

    @extend_schema(
        operation_id="messages_action",
        summary="Cancel a message not yet sending, resend a sent or failed one, or send a scheduled one now",
        description="cancel and send-now answer the message (409 when its state does not allow it); resend "
                    "answers the new copy (202), or the earlier copy of an earlier resend (200).",
        request=None,
        responses={
            200: MessageSerializer, 202: MessageSerializer,
            409: error("The message's state does not allow the action (e.g. cancel of a sent message)."),
        },
    )
    def post(self, request, message_id: str, action: str):
        message_id = int(message_id)
        if not selectors.visible_messages(user=request.user).filter(pk=message_id).exists():
            raise NotFound(f"No message with id {message_id}.")
        log.info("POST /messages/%s/%s received user=%s", message_id, action, request.user.pk)
        if action == "resend":
            outcome = services.resend_message(message_id=message_id, created_by=request.user)
            if outcome.resend is None:
                raise Conflict(f"Not resent: {outcome.reason}.")
            code = status.HTTP_202_ACCEPTED if outcome.created else status.HTTP_200_OK
            return Response(_MESSAGE_REPRESENTATION.to_representation(outcome.resend), status=code)
        done = services.cancel_message(message_id=message_id) if action == "cancel" else services.send_now(message_id=message_id)
        message = OutboundMessage.objects.get(pk=message_id)
        if not done:
            raise Conflict(f"Not done: the message is {message.status}.")
        return Response(_MESSAGE_REPRESENTATION.to_representation(message))


class RequeueStuckView(APIView):
    """Beat's stuck-work sweep, now: for operators and integrators who cannot wait for its next run."""

    permission_classes = [StaffWithRequeuePermission]

    @extend_schema(
        summary="Run the stuck-work sweep now and report what it re-queued",
        description="Staff with messaging.requeue_outboundmessage only. The sweep beat runs every "
                    "MESSAGING_SWEEP_INTERVAL_SECONDS: it publishes again at once the work whose publish failed, "
                    "after 30 s the work the broker lost (when the send queues are empty), re-queues the sends of a "
                    "worker whose heartbeat stopped, and anything else left longer than "
                    "MESSAGING_STUCK_AFTER_SECONDS (stuck_after_seconds in the answer). A live worker's send is "
                    "never taken.",
        request=None,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request):
        log.info("POST /maintenance/requeue-stuck received user=%s", request.user.pk)
        counts = maintenance.requeue_stuck_messages()
        return Response({
            "success": True,
            "requeued": counts,  # queued, retrying, interrupted: published again; failed: out of attempts
            "total": sum(counts.values()),
            "stuck_after_seconds": settings.MESSAGING_STUCK_AFTER_SECONDS,
        })


def require_schedule_permission(user) -> None:
    if not user.has_perm(SCHEDULE):
        raise PermissionDenied("You do not have permission to schedule messages (scheduled_at).")


def require_callback_secret(user) -> None:
    """Status callbacks are signed with the sender's API client secret (access.ApiClient.callback_secret)."""
    if not hasattr(user, "api_client"):
        raise ValidationError({"callback_url": [
            "Only an API client's messages can have a callback_url: its callback secret signs the calls."
        ]})


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
