"""Contacts, their CSV imports, and campaigns with their runs' progress, in the operator console.

Every change goes through campaigns/services.py or contact_import.py, as the API's do; the admin turns their
answers into sentences.
"""
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from campaigns import contact_import, selectors, services, texts
from campaigns.models import Campaign, Contact, ContactImport, ImportStatus, SavedFilter, Tag
from messaging.phones import normalize_phone


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, tag):
        return tag.contact_count


@admin.register(SavedFilter)
class SavedFilterAdmin(admin.ModelAdmin):
    """An audience by rule: all of its tags, each of its field values, made after a moment."""

    list_display = ["name", "contact_count", "created_after"]
    search_fields = ["name"]
    filter_horizontal = ["tags"]
    readonly_fields = ["contact_count"]

    @admin.display(description="contacts now (opted-out included)")
    def contact_count(self, saved_filter):
        return saved_filter.contacts().count() if saved_filter.pk else "-"


class ContactForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = "__all__"

    def clean_phone(self):
        # Stored as the import and the API store it: a run's messages trust a contact's phone (services.prepare_run).
        return normalize_phone(self.cleaned_data.get("phone") or "")


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactForm
    list_display = ["phone", "name", "tag_list", "opted_out_at", "opt_out_source"]
    list_filter = ["tags", ("opted_out_at", admin.EmptyFieldListFilter)]
    search_fields = ["phone", "name"]
    filter_horizontal = ["tags"]
    readonly_fields = ["opted_out_at", "opt_out_source", "created_at", "updated_at"]
    actions = ["export_csv", "opt_out"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="tags")
    def tag_list(self, contact):
        return ", ".join(tag.name for tag in contact.tags.all())

    @admin.action(description="Export the selected contacts as CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(contact_import.export_csv(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="contacts.csv"'
        return response

    @admin.action(description="Opt out: send them no campaign message again")
    def opt_out(self, request, queryset):
        done = sum(services.opt_out(contact_id=pk, source="admin") for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} contact(s) opted out; the others had opted out already.")


class ContactImportForm(forms.ModelForm):
    file = forms.FileField(help_text="CSV with a header row: phone (required), name, tags (a;b), opted_out, and "
                                     "any other column as a template field.")

    class Meta:
        model = ContactImport
        fields = ["tag"]

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None:
            try:
                cleaned["csv_text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError({"file": "The file is not UTF-8 text."})
            try:
                contact_import.read_csv(cleaned["csv_text"].split("\n", 1)[0])  # the header: a phone column
            except ValidationError as error:
                raise ValidationError({"file": error.message_dict.get("file", error.messages)})
        return cleaned


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    """Upload a file: the page that follows is its preview (rows accepted, rejected and why, duplicates merged).
    "Import these contacts" writes them in the background; the progress shows on the same page."""

    list_display = ["__str__", "status", "progress", "accepted", "rejected", "duplicates", "created_at"]
    actions = ["start_import"]
    readonly_fields = ["file_name", "status", "progress", "accepted", "rejected", "duplicates", "rejected_rows",
                       "sample", "created_at", "finished_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            return ContactImportForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["file", "tag"] if obj is None else ["tag", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["tag", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            return
        upload = form.cleaned_data["file"]
        created = contact_import.preview_import(
            csv_text=form.cleaned_data["csv_text"], file_name=upload.name, tag=form.cleaned_data.get("tag", ""),
            created_by=request.user,
        )
        obj.pk = created.pk

    def save_related(self, request, form, formsets, change):
        pass

    @admin.action(description="Import these contacts (in the background)")
    def start_import(self, request, queryset):
        started = [pk for pk in queryset.values_list("pk", flat=True) if contact_import.start_import(import_id=pk)]
        self.message_user(request, f"{len(started)} import(s) started; the others were not previews.")

    @admin.display(description="progress")
    def progress(self, upload):
        if upload.status == ImportStatus.PREVIEW:
            return "not started"
        return f"{upload.processed_rows} of {upload.accepted} contacts written"

    @admin.display(description="rejected rows")
    def rejected_rows(self, upload):
        rows = upload.report.get("rejected_rows", [])
        if not rows:
            return "none"
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li>row {}: {} — {}</li>", ((r["row"], r["phone"], r["reason"]) for r in rows[:200])
        ))

    @admin.display(description="first contacts")
    def sample(self, upload):
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li>{} {} {} {}</li>", (
                (row["phone"], row["name"], row["fields"], ", ".join(row["tags"]))
                for row in upload.report.get("sample", [])
            )
        ))


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "instance", "text", "audience", "saved_filter", "recipients", "scheduled_at", "recurrence",
                  "rate_per_minute", "time_zone", "quiet_hours_start", "quiet_hours_end", "valid_for_seconds"]

    def clean(self):
        cleaned = super().clean()
        candidate = Campaign(**{name: cleaned.get(name) for name in self.Meta.fields
                                if name not in ("recipients", "audience", "saved_filter", "recurrence")
                                and cleaned.get(name) is not None})
        candidate.quiet_hours_start, candidate.quiet_hours_end = cleaned.get("quiet_hours_start"), cleaned.get("quiet_hours_end")
        try:
            services.validate_settings(candidate)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                self.add_error(field if field in self.fields else None, problems)
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ["name", "status", "instance", "audience", "next_run_at", "recurrence", "rate_per_minute"]
    list_filter = ["status", "instance"]
    list_select_related = ["audience", "recurrence"]
    search_fields = ["name", "text"]
    autocomplete_fields = ["recipients"]
    readonly_fields = ["status", "next_run_at", "text_preview", "template_check", "runs", "send_rate"]
    actions = ["launch", "pause", "resume", "cancel"]

    def get_fields(self, request, obj=None):
        fields = list(CampaignForm.Meta.fields)
        return fields if obj is None else [*fields, *self.readonly_fields]

    def has_change_permission(self, request, obj=None):
        # A launched campaign is changed by its actions (pause, resume, cancel), not by editing it.
        return super().has_change_permission(request, obj) and (obj is None or obj.status == "draft")

    class Media:
        js = ["campaigns/preview.js"]  # the live preview under the text field, from preview_view

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "text" in form.base_fields:
            form.base_fields["text"].widget.attrs["data-preview-url"] = reverse("admin:campaigns_campaign_preview")
        return form

    def get_urls(self):
        preview = path("preview/", self.admin_site.admin_view(self.preview_view), name="campaigns_campaign_preview")
        return [preview, *super().get_urls()]

    def preview_view(self, request):
        """``?text=...&audience=<tag id>&recipients=<id>...``: the text for the first contact those would reach
        (a sample contact when none is chosen), rendered by the same rules as a run's messages (campaigns/texts.py)."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        audience, recipients = request.GET.get("audience", ""), request.GET.getlist("recipients")
        contact = services.sample_contact(
            audience_id=int(audience) if audience.isdigit() else None,
            recipient_ids=[int(pk) for pk in recipients if pk.isdigit()],
        )
        person = ({"phone": contact.phone, "name": contact.name, "fields": contact.fields} if contact
                  else texts.SAMPLE)
        return JsonResponse({"preview": texts.preview(request.GET.get("text", ""), **person), "sample": contact is None})

    @admin.display(description="preview")
    def text_preview(self, campaign):
        contact = services.audience_of(campaign).filter(opted_out_at__isnull=True).first()
        if contact is None:
            return "No recipient yet."
        return texts.preview(campaign.text, phone=contact.phone, name=contact.name, fields=contact.fields)

    @admin.display(description="placeholders")
    def template_check(self, campaign):
        try:
            missing = services.check_template(campaign_id=campaign.pk)
        except ValidationError as error:
            return "; ".join(error.messages)
        return "; ".join(map(str, missing)) or "Every recipient has a value for every placeholder."

    @admin.display(description="runs")
    def runs(self, campaign):
        progress = selectors.run_progress(campaign)
        if not progress:
            return "No run yet."
        link = reverse("admin:messaging_outboundmessage_changelist")
        return format_html(
            "<table><tr><th>run</th><th>status</th><th>total</th><th>waiting</th><th>held</th><th>queued</th>"
            "<th>sent</th><th>delivered</th><th>read</th><th>failed</th><th>cancelled</th><th>expired</th><th>skipped</th>"
            "<th>messages</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                 "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td title='{}'>{}</td>"
                                 "<td><a href='{}?campaign={}:run:{}'>open</a></td></tr>", (
                (r["number"], r["status"], r["total"], r["waiting"], r["held"], r["queued"], r["sent"], r["delivered"],
                 r["read"], r["failed"], r["cancelled"], r["expired"], r["skipped_reasons"], r["skipped"], link,
                 campaign.pk, r["number"])
                for r in progress
            )),
        )

    @admin.display(description="send rate")
    def send_rate(self, campaign):
        charts = [(run.number, selectors.send_rate(source=run.source)) for run in campaign.runs.order_by("-number")[:3]]
        if not any(rate["counts"] for _, rate in charts):
            return "Nothing sent yet."
        return format_html_join("", "<p>Run {}:<br>{}</p>", (
            (number, send_rate_chart(rate)) for number, rate in charts if rate["counts"]
        ))

    def _each(self, request, queryset, act, verb):
        done, refused = [], []
        for campaign in queryset:
            try:
                (done if act(campaign_id=campaign.pk) else refused).append(campaign.name)
            except ValidationError as error:
                refused.append(f"{campaign.name} ({'; '.join(error.messages)})")
        if done:
            self.message_user(request, f"{verb}: {', '.join(done)}.")
        if refused:
            self.message_user(request, f"Not {verb.lower()}: {', '.join(refused)}.", level=messages.WARNING)

    @admin.action(description="Launch the selected drafts", permissions=["launch"])
    def launch(self, request, queryset):
        self._each(request, queryset, services.launch_campaign, "Launched")

    @admin.action(description="Pause the selected campaigns", permissions=["control"])
    def pause(self, request, queryset):
        self._each(request, queryset, services.pause_campaign, "Paused")

    @admin.action(description="Resume the selected campaigns", permissions=["control"])
    def resume(self, request, queryset):
        self._each(request, queryset, services.resume_campaign, "Resumed")

    @admin.action(description="Cancel the selected campaigns", permissions=["control"])
    def cancel(self, request, queryset):
        self._each(request, queryset, services.cancel_campaign, "Cancelled")

    def has_launch_permission(self, request):
        return request.user.has_perm("campaigns.launch_campaign")

    def has_control_permission(self, request):
        return request.user.has_perm("campaigns.control_campaign")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


CHART_WIDTH, CHART_HEIGHT, CHART_MIN_SLOTS = 600, 120, 20


def send_rate_chart(rate: dict) -> str:
    """A run's messages sent per bar of time (``selectors.send_rate``) as an inline SVG bar chart: no script, no CDN
    (the console's CSP allows neither); each bar's count and time show on hover."""
    counts, width = rate["counts"], rate["bar_seconds"]
    tallest = max(counts)
    bar = CHART_WIDTH / max(len(counts), CHART_MIN_SLOTS)  # a short run's few bars stay bars
    unit = f"{width // 3600} h" if width >= 3600 else f"{width // 60} min" if width >= 60 else f"{width} s"
    bars = format_html_join("", '<rect x="{}" y="{}" width="{}" height="{}" fill="#417690"><title>{} sent from {} UTC</title></rect>', (
        (f"{i * bar:.1f}", f"{CHART_HEIGHT - count / tallest * CHART_HEIGHT:.1f}", f"{max(bar - 1, 0.5):.1f}",
         f"{count / tallest * CHART_HEIGHT:.1f}", count, f"{rate['start'] + timedelta(seconds=i * width):%H:%M:%S}")
        for i, count in enumerate(counts) if count
    ))
    return format_html(
        '<svg class="send-rate" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Messages sent per {unit}">'
        '<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#999"></line>{bars}</svg>'
        "<br><small>Messages sent per {unit} from {start} UTC; the tallest bar is {tallest}.</small>",
        w=CHART_WIDTH, h=CHART_HEIGHT, unit=unit, bars=bars, start=f"{rate['start']:%Y-%m-%d %H:%M:%S}", tallest=tallest,
    )
