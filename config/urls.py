from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("inbound.urls")),  # before messaging's catch-all too
    path("", include("callbacks.urls")),
    path("", include("campaigns.api.urls")),  # before messaging's, whose last route answers every other path
    path("", include("messaging.api.urls")),
]

# Django's own error pages, as the API's JSON envelope outside the admin (messaging/api/errors.py).
handler400 = "messaging.api.errors.bad_request"
handler403 = "messaging.api.errors.permission_denied"
handler404 = "messaging.api.errors.page_not_found"
handler500 = "messaging.api.errors.server_error"
