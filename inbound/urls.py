from django.urls import path

from inbound import api, views

urlpatterns = [
    path("inbound", api.InboundListView.as_view(), name="inbound"),
    path("webhooks/evolution/<str:instance>", views.evolution_webhook, name="evolution-webhook"),
    path("webhooks/evolution/<str:instance>/<slug:event>", views.evolution_webhook, name="evolution-webhook-event"),
]
