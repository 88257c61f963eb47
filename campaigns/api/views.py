"""Campaigns over HTTP. Views are thin: shape the body, call a service, render."""
import logging

from django.core.exceptions import ValidationError as DjangoValidationError

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import contact_import, services
from campaigns.api.parsers import CSVTextParser
from campaigns.api.permissions import CampaignControlPermission, CampaignPermission, ContactImportPermission
from campaigns.api.serializers import (
    CampaignCreateSerializer, CampaignSerializer, ContactImportSerializer, ContactImportUploadSerializer,
)
from campaigns.models import Campaign, ContactImport, ImportStatus
from messaging.api.schema import error
from messaging.api.views import Conflict, require_callback_secret

log = logging.getLogger("campaigns.api")


def _campaign(campaign_id) -> Campaign:
    campaign = Campaign.objects.select_related("audience", "recurrence__crontab", "recurrence__interval").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"No campaign with id {campaign_id}.")
    return campaign


class CampaignCreateView(APIView):
    permission_classes = [CampaignPermission]

    @extend_schema(
        summary="Create a campaign and launch it (unless draft)",
        description="One text template to many contacts: `recipients` (made or merged into contacts by phone) "
                    "and/or `audience` (a tag) and/or `saved_filter` (a saved filter's name). Launched, it starts "
                    "at `scheduled_at` (now when empty) and then on its `recurrence`; beat's due-check starts each run. A placeholder some recipients have no "
                    "value for is a 400 naming it, how many and which, before anything is sent.",
        request={"application/json": CampaignCreateSerializer},
        responses={201: CampaignSerializer},
    )
    def post(self, request):
        body = CampaignCreateSerializer(data=request.data)
        if not body.is_valid():
            return invalid(body.errors)
        data = body.validated_data
        log.info("POST /campaigns received user=%s", request.user.pk)
        if data.get("callback_url"):
            require_callback_secret(request.user)  # its callbacks are signed with the client's secret
        try:
            campaign = self._create(data, request.user)
        except DjangoValidationError as error:
            return invalid(error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages})
        return Response(CampaignSerializer(_campaign(campaign.pk)).data, status=status.HTTP_201_CREATED)

    def _create(self, data, user) -> Campaign:
        quiet = data.get("quiet_hours")
        with transaction.atomic():  # a campaign refused at launch is not kept as a draft
            campaign = services.create_campaign(
                name=data["name"], text=data["text"], instance=data.get("instance"), audience=data.get("audience"),
                recipients=data.get("recipients"), scheduled_at=data.get("scheduled_at"),
                rate_per_minute=data["rate_per_minute"], time_zone=data["time_zone"],
                quiet_hours=(quiet["start"], quiet["end"]) if quiet else None,
                valid_for_seconds=data.get("valid_for_seconds"), recurrence=data.get("recurrence") or None,
                created_by=user, callback_url=data.get("callback_url", ""), saved_filter=data.get("saved_filter"),
            )
            if not data["draft"]:
                services.launch_campaign(campaign_id=campaign.pk)
        return campaign


def invalid(fields: dict) -> Response:
    """The API's error envelope with the campaign's own field names (``text`` is the template here, where the
    shared handler would rename it to the ``message`` of POST /messages)."""
    first, problems = next(iter(fields.items()))
    first_problem = problems[0] if isinstance(problems, list) and problems else problems
    return Response(
        {"success": False, "error": {"code": "invalid", "message": f"{first}: {first_problem}", "fields": fields}},
        status=status.HTTP_400_BAD_REQUEST,
    )


class CampaignDetailView(APIView):
    permission_classes = [CampaignPermission]

    @extend_schema(summary="A campaign with its runs and their counts", responses=CampaignSerializer)
    def get(self, request, campaign_id: int):
        return Response(CampaignSerializer(_campaign(campaign_id)).data)


ACTIONS = {
    "pause": services.pause_campaign,
    "resume": services.resume_campaign,
    "cancel": services.cancel_campaign,
}


class CampaignActionView(APIView):
    permission_classes = [CampaignControlPermission]

    @extend_schema(
        operation_id="campaigns_action",
        summary="Pause, resume or cancel a campaign",
        description="pause holds every waiting message of its runs and starts no run; resume gives them send "
                    "times again from now; cancel cancels them and its recurrence. A send in progress finishes.",
        request=None,
        responses={200: CampaignSerializer, 409: error("The campaign's state does not allow the action.")},
    )
    def post(self, request, campaign_id: str, action: str):
        campaign = _campaign(int(campaign_id))
        log.info("POST /campaigns/%s/%s received user=%s", campaign.pk, action, request.user.pk)
        if not ACTIONS[action](campaign_id=campaign.pk):
            raise Conflict(f"Not done: the campaign is {campaign.status}.")
        return Response(CampaignSerializer(_campaign(campaign.pk)).data)




class ImportQuerySerializer(serializers.Serializer):
    tag = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                help_text="A tag given to every imported contact (an audience for a campaign).")


class ContactImportView(APIView):
    permission_classes = [ContactImportPermission]
    parser_classes = [MultiPartParser, CSVTextParser]

    @extend_schema(
        operation_id="contacts_import",
        summary="Import contacts from a CSV file",
        description="The file as a multipart upload (`file`) or as the body itself (`Content-Type: text/csv`). "
                    "Header row: `phone` required, `name`, `tags` (`a;b`), `opted_out` (yes/no); every other column "
                    "becomes a template field. New phones are created, known ones merged (tags added, an opt-out "
                    "kept); rows with the same phone are merged. A file of up to 64 KiB is imported during the "
                    "request: 201 with its report (accepted, rejected and why, duplicates). A larger one is "
                    "imported in the background: 202 with its id; follow `status_url` until `status` is `done`.",
        parameters=[ImportQuerySerializer],
        request={"multipart/form-data": ContactImportUploadSerializer, "text/csv": OpenApiTypes.STR},
        responses={201: ContactImportSerializer, 202: ContactImportSerializer},
    )
    def post(self, request):
        query = ImportQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return invalid(query.errors)
        if isinstance(request.data, str):
            csv_text, file_name = request.data, ""
        else:
            body = ContactImportUploadSerializer(data=request.data)
            if not body.is_valid():
                return invalid(body.errors)
            upload = body.validated_data["file"]
            try:
                csv_text, file_name = upload.read().decode("utf-8-sig"), upload.name.replace("\x00", "")[:255]
            except UnicodeDecodeError:
                return invalid({"file": ["The file is not UTF-8 text."]})
        log.info("POST /contacts/import received user=%s bytes=%s", request.user.pk, len(csv_text))
        try:
            upload = contact_import.upload_contacts(
                csv_text=csv_text, file_name=file_name, tag=query.validated_data.get("tag", ""), created_by=request.user,
            )
        except DjangoValidationError as error:
            return invalid(error.message_dict if hasattr(error, "error_dict") else {"file": error.messages})
        done = upload.status == ImportStatus.DONE
        return Response(ContactImportSerializer(upload).data, status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED)


class ContactImportDetailView(APIView):
    permission_classes = [ContactImportPermission]

    @extend_schema(operation_id="contacts_import_status", summary="An import's progress and report",
                   responses=ContactImportSerializer)
    def get(self, request, import_id: int):
        upload = ContactImport.objects.filter(pk=import_id).first()
        if upload is None:
            raise NotFound(f"No contact import with id {import_id}.")
        return Response(ContactImportSerializer(upload).data)
