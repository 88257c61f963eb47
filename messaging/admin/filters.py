"""The changelist's filters: each one reads an index, and none runs a DISTINCT over the table to list its choices."""
from django.conf import settings
from django.contrib import admin
from django.db.models import Exists, OuterRef

from messaging.dashboard.queries import recent_failure_kinds
from messaging.models import AttemptOutcome, MessageStatus, SendAttempt

FAILED_ATTEMPT_OUTCOMES = (AttemptOutcome.TEMPORARY_ERROR, AttemptOutcome.PERMANENT_ERROR, AttemptOutcome.INTERRUPTED)


class InstanceFilter(admin.SimpleListFilter):
    title = "instance"
    parameter_name = "instance"

    def lookups(self, request, model_admin):
        return [(name, name) for name in settings.EVOLUTION_INSTANCES]

    def queryset(self, request, queryset):
        return queryset.filter(instance=self.value()) if self.value() else queryset


class CampaignFilter(admin.SimpleListFilter):
    """Messages a campaign made, by their ``source``: ``?campaign=12`` (every run of campaign 12, a prefix on the
    source index), ``?campaign=12:run:3`` (one run), ``any`` or ``none``."""

    title = "campaign"
    parameter_name = "campaign"

    def lookups(self, request, model_admin):
        choices = [("any", "From a campaign"), ("none", "Not from a campaign")]
        value = self.value()
        if value and value not in ("any", "none"):
            choices.append((value, f"Campaign {value.replace(':run:', ', run ')}"))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "any":
            return queryset.filter(source__startswith="campaign:")
        if value == "none":
            return queryset.exclude(source__startswith="campaign:")
        campaign, _, run = value.partition(":run:")
        if not campaign.isdigit() or (run and not run.isdigit()):
            return queryset.none()
        if run:
            return queryset.filter(source=f"campaign:{campaign}:run:{run}")
        return queryset.filter(source__startswith=f"campaign:{campaign}:")


class FailedAttemptsFilter(admin.SimpleListFilter):
    title = "has failed attempts"
    parameter_name = "failed_attempts"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        failed = SendAttempt.objects.filter(message=OuterRef("pk"), outcome__in=FAILED_ATTEMPT_OUTCOMES)
        return queryset.filter(Exists(failed)) if self.value() == "yes" else queryset.exclude(Exists(failed))


class ReceiptFilter(admin.SimpleListFilter):
    """What WhatsApp's receipts said of a message (inbound/): ``delivered`` (read ones included, as a read message
    was delivered), ``read``, ``unread`` (delivered, not read yet) or ``none`` (sent, no receipt yet)."""

    title = "receipt"
    parameter_name = "receipt"

    def lookups(self, request, model_admin):
        return [("delivered", "Delivered (or read)"), ("read", "Read"), ("unread", "Delivered, not read"),
                ("none", "Sent, no receipt yet")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "delivered":
            return queryset.filter(delivered_at__isnull=False)
        if value == "read":
            return queryset.filter(read_at__isnull=False)
        if value == "unread":
            return queryset.filter(delivered_at__isnull=False, read_at__isnull=True)
        if value == "none":
            return queryset.filter(status=MessageStatus.SENT, delivered_at__isnull=True)
        return queryset


class FailureReasonFilter(admin.SimpleListFilter):
    title = "failure reason"
    parameter_name = "last_error_kind"

    def lookups(self, request, model_admin):
        # The reasons seen this week; any other value still filters when linked to.
        return [(kind, kind or "(none)") for kind in recent_failure_kinds()]

    def queryset(self, request, queryset):
        return queryset.filter(last_error_kind=self.value()) if self.value() is not None else queryset
