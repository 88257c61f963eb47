"""GET /callbacks and GET /messages/{id}/callbacks: what the console told an integrator's callback_url, and how
each POST went. The access model of GET /messages (callbacks/selectors.py): Support and Operators see every
callback, an API client those of its own messages."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from callbacks import selectors
from callbacks.models import STATUS_RANK, CallbackAttempt, CallbackDelivery, DeliveryState
from messaging.api.permissions import may_read
from messaging.api.views import MessageCursorPagination
from messaging.selectors import visible_messages


class CallbackAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = CallbackAttempt
        fields = ["number", "started_at", "finished_at", "duration_ms", "http_status", "error"]


class CallbackDeliverySerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=DeliveryState.choices)
    body = serializers.CharField(help_text="The JSON POSTed, byte for byte as signed (empty before the first try).")
    attempts = CallbackAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = CallbackDelivery
        fields = [
            "id", "message", "status", "at", "url", "state", "attempt_count", "next_attempt_at", "finished_at",
            "last_error", "body", "created_at", "attempts",
        ]


class CallbackFilterSerializer(serializers.Serializer):
    """The query of GET /callbacks; empty is "any"."""

    message = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="A message's id.")
    state = serializers.ChoiceField(choices=DeliveryState.choices, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=sorted(STATUS_RANK), required=False, allow_blank=True,
                                     help_text="The message status the callback tells.")


class CallbackPermission(BasePermission):
    message = "You do not have permission to read status callbacks."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (user.has_perm(selectors.VIEW_CALLBACKS) or may_read(user)))


class CallbackListView(ListAPIView):
    permission_classes = [CallbackPermission]
    pagination_class = MessageCursorPagination
    serializer_class = CallbackDeliverySerializer

    @extend_schema(summary="List status callbacks, newest first, each with its attempts",
                   parameters=[CallbackFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = CallbackFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.callback_list(user=self.request.user, **filters.validated_data)


class MessageCallbacksView(APIView):
    permission_classes = [CallbackPermission]

    @extend_schema(summary="A message's status callbacks in the order they are told, each with its attempts",
                   responses=CallbackDeliverySerializer(many=True))
    def get(self, request, message_id: int):
        if not visible_messages(user=request.user).filter(pk=message_id).exists():
            raise NotFound(f"No message with id {message_id}.")
        deliveries = selectors.callbacks_of_message(user=request.user, message_id=message_id)
        return Response(CallbackDeliverySerializer(deliveries, many=True).data)
