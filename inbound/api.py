"""GET /inbound: what contacts wrote, for integrators. The same access model as GET /messages: the
``view_inboundmessage`` permission sees every reply, an API client the replies of the phones it sent to."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission

from inbound import selectors
from inbound.models import InboundMessage
from messaging.api.permissions import may_read
from messaging.api.views import MessageCursorPagination


class InboundMessageSerializer(serializers.ModelSerializer):
    instance_name = serializers.CharField(source="instance")

    class Meta:
        model = InboundMessage
        fields = [
            "id", "phone", "instance_name", "whatsapp_id", "remote_jid", "push_name", "message_type", "text",
            "sent_at", "received_at", "batch",
        ]


class InboundFilterSerializer(serializers.Serializer):
    """Documents the query (/schema); see InboundListView.get_queryset."""

    phone = serializers.CharField(required=False, allow_blank=True, help_text="Any format, with country code.")


class InboundPermission(BasePermission):
    message = "You do not have permission to read replies."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (user.has_perm(selectors.VIEW_INBOUND) or may_read(user)))


class InboundListView(ListAPIView):
    permission_classes = [InboundPermission]
    pagination_class = MessageCursorPagination
    serializer_class = InboundMessageSerializer

    @extend_schema(summary="List what contacts wrote, newest first", parameters=[InboundFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        # Read as typed: a phone is matched by its digits (``phone_filter``), so any other character, NUL
        # included, is no error, just no digit.
        return selectors.inbound_list(user=self.request.user, phone=self.request.query_params.get("phone"))
