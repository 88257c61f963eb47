from django.urls import path, re_path

from campaigns.api import views

urlpatterns = [
    path("campaigns", views.CampaignCreateView.as_view(), name="campaigns"),
    path("campaigns/<int:campaign_id>", views.CampaignDetailView.as_view(), name="campaign-detail"),
    path("contacts/import", views.ContactImportView.as_view(), name="contact-import"),
    path("contacts/import/<int:import_id>", views.ContactImportDetailView.as_view(), name="contact-import-detail"),
    re_path(r"^campaigns/(?P<campaign_id>[0-9]+)/(?P<action>pause|resume|cancel)$", views.CampaignActionView.as_view(),
            name="campaign-action"),
]
