"""GET /metrics: the Prometheus text that messaging.metrics builds, for scrapers the console trusts."""
import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from messaging import metrics

# A proxy on this host sets one of these (RFC 7239's Forwarded, or the de facto two); a scraper calling directly none.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-Ip")


def metrics_view(request):
    """Prometheus text format. Needs the bearer token when METRICS_TOKEN is set; otherwise loopback only."""
    if not _may_scrape(request):
        return HttpResponse("Forbidden: send Authorization: Bearer <METRICS_TOKEN>.\n", status=403, content_type="text/plain")
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


def _may_scrape(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    if any(header in request.headers for header in PROXY_HEADERS):
        return False  # came through a proxy: the loopback address is the proxy's, not the client's
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
