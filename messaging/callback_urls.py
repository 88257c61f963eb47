"""The rule for a callback_url, the address a message's status changes are POSTed to (callbacks/): one rule for
a message (``services.validate_message``) and a campaign (campaigns/services.py), whoever gives it."""
import functools
import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from messaging.storable import unstorable

CALLBACK_URL_MAX_LENGTH = 500  # OutboundMessage.callback_url


def clean_callback_url(url) -> str:
    """``url`` as it is stored ("" for none): http(s), storable, at most 500 characters, not a private literal
    address; raises ValidationError on ``callback_url``."""
    if url is None or url == "":
        return ""
    if not isinstance(url, str):
        problem = "Not a valid string."
    elif problem := unstorable(url):
        pass
    elif len(url) > CALLBACK_URL_MAX_LENGTH:
        problem = f"Ensure this field has no more than {CALLBACK_URL_MAX_LENGTH} characters."
    elif not _is_http_url(url):
        problem = "Enter an http or https URL, e.g. https://example.com/whatsapp-status."
    elif not settings.CALLBACK_ALLOW_PRIVATE_NETWORKS and (host := _private_literal_host(url)):
        problem = f"Enter a URL on a public address: {host} is not one."
    else:
        return url
    raise ValidationError({"callback_url": [problem]})


@functools.lru_cache(maxsize=256)
def _is_http_url(url: str) -> bool:
    """Remembered: a campaign run checks its one callback_url for each of its messages (URLValidator: ~50 us)."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _private_literal_host(url: str) -> str | None:
    """The URL's host when it is localhost or a literal IP address that is not public (loopback, private,
    link-local, multicast...), else None. A name is not resolved here (a campaign checks its URL for each of its
    messages); callbacks.addresses resolves it, and refuses a private answer, before each POST."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = ip.ipv4_mapped
    return None if ip.is_global and not ip.is_multicast else host  # 224.0.0.1 is "global" on Python 3.11
