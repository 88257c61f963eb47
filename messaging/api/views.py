"""HTTP API. Views are thin: parse, call a service or selector, render."""
import logging

from celery.result import AsyncResult
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging import selectors, services
from messaging.api.serializers import (
    MessageCreateSerializer,
    MessageDetailSerializer,
    MessageFilterSerializer,
    MessageSerializer,
    read_bulk_item,
)
from messaging.api.errors import SERVICE_TO_API_FIELDS
from messaging.health import system_health
from messaging.models import OutboundMessage

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
        health = system_health()
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


# Building a ModelSerializer's fields costs more than rendering them; POST /messages renders with one instance
# built once per process (to_representation only reads the fields, so threads can share it).
_MESSAGE_REPRESENTATION = MessageSerializer()


class MessageListCreateView(ListAPIView):
    pagination_class = MessageCursorPagination
    serializer_class = MessageSerializer

    @extend_schema(
        summary="Accept a message for sending",
        request=MessageCreateSerializer,
        responses={202: MessageSerializer, 200: MessageSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request):
        idempotency_key = request.headers.get("Idempotency-Key") or None
        if idempotency_key and idempotency_key.startswith(services.RESERVED_KEY_PREFIX):
            # The console's own keys (the admin's resends) live there; a client's must not collide with them.
            raise ValidationError({"Idempotency-Key": [f'Keys starting with "{services.RESERVED_KEY_PREFIX}" are reserved.']})
        log.info("POST /messages received user=%s idempotency_key=%s", request.user.pk, idempotency_key)
        body = MessageCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message, created = services.accept_message(
            phone=body.validated_data["phone"],
            text=body.validated_data["message"],
            instance=body.validated_data.get("instance_name"),
            scheduled_at=body.validated_data.get("scheduled_at"),
            idempotency_key=idempotency_key,
            created_by=request.user,
        )
        code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(_MESSAGE_REPRESENTATION.to_representation(message), status=code)

    @extend_schema(summary="List messages, newest first", parameters=[MessageFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = MessageFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.message_list(**filters.validated_data)


class MessageBulkCreateView(APIView):
    @extend_schema(
        summary=f"Accept up to {services.BULK_MAX_MESSAGES} messages in one request",
        description=(
            'Body: {"messages": [{"phone", "message", "instance_name"?, "scheduled_at"?}, ...]}. Each item is '
            "validated on its own; the answer lists per item (in order) its id and task_id, or its field errors. "
            "Accepted items are stored and enqueued; rejected ones write nothing. 202 when at least one item was "
            "accepted, 400 when none was."
        ),
        request=dict,
        responses={202: dict, 400: dict},
    )
    def post(self, request):
        raw_items = request.data.get("messages") if isinstance(request.data, dict) else None
        if not isinstance(raw_items, list) or not raw_items:
            raise ValidationError({"messages": ["Expected a non-empty list of messages."]})
        if len(raw_items) > services.BULK_MAX_MESSAGES:
            raise ValidationError({"messages": [f"Send at most {services.BULK_MAX_MESSAGES} messages per request."]})
        shaped = [read_bulk_item(raw) for raw in raw_items]
        valid = [values for values, errors in shaped if errors is None]
        stored = iter(services.accept_messages(items=valid, created_by=request.user))
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
        body = {"success": accepted > 0, "accepted": accepted, "rejected": len(results) - accepted, "results": results}
        if not accepted:  # the usual error shape too, so clients that only read "error" understand it
            first = results[0]
            field, problems = next(iter(first["errors"].items()))
            body["error"] = {
                "code": "invalid",
                "message": f"no message was accepted; messages[{first['index']}].{field}: {problems[0]}",
                "fields": {"messages": {str(result["index"]): result["errors"] for result in results}},
            }
        return Response(body, status=status.HTTP_202_ACCEPTED if accepted else status.HTTP_400_BAD_REQUEST)


class MessageDetailView(APIView):
    @extend_schema(summary="A message with every send attempt", responses=MessageDetailSerializer)
    def get(self, request, message_id: int):
        try:
            message = selectors.message_with_attempts(message_id=message_id)
        except OutboundMessage.DoesNotExist:
            raise NotFound(f"No message with id {message_id}.")
        return Response(MessageDetailSerializer(message).data)


class TaskView(APIView):
    @extend_schema(summary="Celery state and result of a send task", responses=OpenApiTypes.OBJECT)
    def get(self, request, task_id: str):
        if len(task_id) > 255 or not task_id.isprintable():
            raise NotFound("No such task.")  # no Celery id looks like this, and PostgreSQL cannot compare NUL
        result = AsyncResult(task_id)
        value = result.result
        if isinstance(value, BaseException):
            value = f"{type(value).__name__}: {value}"
        message_id = OutboundMessage.objects.filter(task_id=task_id).values_list("pk", flat=True).first()
        return Response({"task_id": task_id, "state": result.state, "result": value, "message_id": message_id})
