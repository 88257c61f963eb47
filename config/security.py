"""Headers Django 5.2 does not set itself: a Content-Security-Policy on every answer, and no-store on the API's.

The policy allows scripts from this origin only, plus the one inline script of the admin's base template (by its
hash, read from the template, so it follows edits). Styles may be inline: the admin and the dashboard's SVG chart use
style attributes, and a style cannot run code. /docs is drf-spectacular's Swagger UI, whose page starts it with an
inline script; that page shows no stored data, so it alone may run inline scripts.
"""
import base64
import hashlib
import re

from django.conf import settings
from rest_framework.response import Response

ADMIN_BASE_TEMPLATE = settings.BASE_DIR / "templates" / "admin" / "base_site.html"


def _inline_script_hashes(template) -> list[str]:
    """CSP source expressions for the inline scripts of a template with no variables inside its scripts."""
    scripts = re.findall(r"<script>(.*?)</script>", template.read_text(), flags=re.S)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'" for script in scripts]


def _policy(script_src: str) -> str:
    return "; ".join([
        "default-src 'self'",
        f"script-src {script_src}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


POLICY = _policy(" ".join(["'self'", *_inline_script_hashes(ADMIN_BASE_TEMPLATE)]))
DOCS_POLICY = _policy("'self' 'unsafe-inline'")
DOCS_PATH = "/docs"


class SecurityHeadersMiddleware:
    """Content-Security-Policy on every answer; ``Cache-Control: no-store`` on the API's answers, which carry phone
    numbers and texts (a shared proxy or the browser's disk cache must not keep them). Static files keep their
    caching."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", DOCS_POLICY if request.path == DOCS_PATH else POLICY)
        # Every API view answers with DRF's Response whatever the renderer (the browsable API's HTML shows the same
        # phones and texts); JSON covers the error envelope of paths no view matched.
        if isinstance(response, Response) or response.get("Content-Type", "").startswith("application/json"):
            response["Cache-Control"] = "no-store"
        return response
