"""The only code that speaks HTTP to Evolution API.

Every call ends as a typed result or as one of two errors, following section 7 of the contract
(/work/shared/evolution-api-contract.md):

- PermanentError: retrying cannot help (number not on WhatsApp, a rejected body, a wrong apikey or instance
  name, a licence wall). The caller gives up and shows `detail` to an operator.
- TemporaryError: worth retrying later (5xx, 429, the instance lost its connection, network trouble).

`maybe_sent` is the second axis. It is True when WhatsApp may have the message even though we got no 201: a
timeout or reset after the request was written, a 400 "Error: ..." raised inside Evolution's send step, a
gateway 5xx or an unreadable 2xx body. The caller must ask `find_sent_message` before sending again, or the
recipient gets the message twice. The client itself never retries: the caller owns retries and their pacing.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import re
import ssl
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings

from evolution.jids import create_jid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentMessage:
    message_id: str  # key.id, the WhatsApp message id
    remote_jid: str  # key.remoteJid; WhatsApp may route to a JID other than the number we sent, so store it
    status: str  # "PENDING" from a 201, or the furthest MessageUpdate status when found by findMessages
    timestamp: int | None  # messageTimestamp, unix seconds


class EvolutionError(Exception):
    """A call that did not succeed. `detail` is for people, `kind` for code, `status_code` is None when no
    HTTP response came back."""

    retryable: bool = False
    maybe_sent: bool = False
    retry_after: float | None = None  # set on a TemporaryError when the server said how long to wait

    def __init__(self, detail: str, *, kind: str, status_code: int | None = None, maybe_sent: bool = False):
        super().__init__(detail)
        self.detail = detail
        self.kind = kind  # a stable short code: "not_on_whatsapp", "timeout", ...
        self.status_code = status_code
        self.maybe_sent = maybe_sent

    def __str__(self) -> str:
        status = f" http={self.status_code}" if self.status_code is not None else ""
        return f"{self.kind}{status}: {self.detail}"

    def __reduce__(self):
        # Celery pickles exceptions between processes; the default reduce would drop the keyword arguments.
        return _rebuild_error, (type(self), self.detail, self.kind, self.status_code, self.maybe_sent)


class PermanentError(EvolutionError):
    retryable = False


class TemporaryError(EvolutionError):
    retryable = True

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after  # seconds the server asked us to wait (429 Retry-After), if it said

    def __reduce__(self):
        return _rebuild_temporary, (self.detail, self.kind, self.status_code, self.maybe_sent, self.retry_after)


def _rebuild_error(cls, detail, kind, status_code, maybe_sent):
    return cls(detail, kind=kind, status_code=status_code, maybe_sent=maybe_sent)


def _rebuild_temporary(detail, kind, status_code, maybe_sent, retry_after):
    return TemporaryError(detail, kind=kind, status_code=status_code, maybe_sent=maybe_sent, retry_after=retry_after)


# Inside its send step Evolution turns any exception into 400 [error.toString()]: "Error: Connection Closed",
# "Error: Timed Out", or "<Name>Error: ..." when it fails after WhatsApp accepted the message (saving it, say).
_SEND_STEP_ERROR = re.compile(r"^[A-Za-z]*Error: ")

# Delivery statuses in the order they happen (utils/renderStatus.ts); a message's status never moves backwards.
_STATUS_ORDER = ("ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED")

_FIND_PAGE_SIZE = 50
_FIND_MAX_PAGES = 20  # reconciliation reads at most 1,000 of our messages to one number in the window


class EvolutionClient:
    """A thread-safe Evolution API client; keep one (``get_client``: one per thread) so its connection pool is
    reused."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 15.0,
        connect_timeout: float = 3.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"apikey": api_key},
            # Connecting fails fast (nothing was sent); reading waits for WhatsApp, which can be slow.
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            # Evolution (Node) closes idle keep-alive sockets after 5 s. Dropping ours sooner keeps a send from
            # being written to a socket the server is closing, which would look like a maybe-sent reset.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=4.0),
            transport=transport,
            verify=_ssl_context(),
        )

    def send_text(self, *, instance: str, number: str, text: str) -> SentMessage:
        """POST /message/sendText/{instance}. Returns the accepted message (status PENDING)."""
        digits = _digits(number)
        body = self._call("POST", f"/message/sendText/{instance}", json={"number": digits, "text": text}, sends=True)
        try:
            return _sent_message(body, status=body.get("status") or "PENDING")
        except (AttributeError, KeyError, TypeError, ValueError):
            raise TemporaryError(
                f"unexpected sendText response: {str(body)[:200]}", kind="bad_response", maybe_sent=True
            ) from None

    def connection_state(self, *, instance: str) -> str:
        """GET /instance/connectionState/{instance}: "open", "close", "connecting", or "unknown" when
        Evolution has the instance but not loaded in memory."""
        body = self._call("GET", f"/instance/connectionState/{instance}", sends=False)
        if not isinstance(body, dict) or not isinstance(body.get("instance"), dict):
            raise TemporaryError(f"unexpected connectionState response: {str(body)[:200]}", kind="bad_response")
        return body["instance"].get("state") or "unknown"

    def set_webhook(self, *, instance: str, body: dict) -> dict:
        """POST /webhook/set/{instance} with a body from ``evolution.webhooks.webhook_set_body``; returns the
        webhook row Evolution stored (201)."""
        answer = self._call("POST", f"/webhook/set/{instance}", json=body, sends=False)
        if not isinstance(answer, dict):
            raise TemporaryError(f"unexpected webhook/set response: {str(answer)[:200]}", kind="bad_response")
        return answer

    def find_sent_message(
        self,
        *,
        instance: str,
        number: str,
        text: str,
        since: datetime,
        until: datetime,
        message_id: str | None = None,
        exclude_ids: frozenset[str] | set[str] = frozenset(),
    ) -> SentMessage | None:
        """Look for a message we sent, to learn whether an ambiguous attempt reached WhatsApp.

        With `message_id` the lookup is by key.id alone. Otherwise it lists our own messages to the number's
        JIDs between `since` and `until` and returns the newest one whose text is exactly `text` and whose id
        is not in `exclude_ids` (the ids of other messages of ours with the same text, which are not this one).
        messageTimestamp is set by the Evolution host's clock at one-second resolution, so pad the window.
        """
        if message_id:
            where: dict[str, Any] = {"key": {"id": message_id}}
            return self._first_match(instance, where, text=None, exclude_ids=frozenset())
        window = {"gte": _iso(since), "lte": _iso(until)}  # Evolution ignores the filter unless both are given
        for jid in _jids_for(number):
            where = {"key": {"remoteJid": jid, "fromMe": True}, "messageTimestamp": window}
            found = self._first_match(instance, where, text=text, exclude_ids=exclude_ids)
            if found:
                return found
        return None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EvolutionClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _first_match(self, instance: str, where: dict, *, text: str | None, exclude_ids) -> SentMessage | None:
        for page in range(1, _FIND_MAX_PAGES + 1):
            body = self._call(
                "POST",
                f"/chat/findMessages/{instance}",
                json={"where": where, "page": page, "offset": _FIND_PAGE_SIZE},
                sends=False,
            )
            try:
                found = body["messages"]
                records, pages = list(found["records"]), int(found.get("pages") or 0)
            except (AttributeError, KeyError, TypeError, ValueError):
                raise TemporaryError(
                    f"unexpected findMessages response: {str(body)[:200]}", kind="bad_response"
                ) from None
            for record in records:  # newest first
                if not isinstance(record, dict) or (text is not None and _text_of(record) != text):
                    continue
                try:
                    found = _sent_message(record, status=_furthest_status(record))
                except (AttributeError, KeyError, TypeError, ValueError):
                    continue  # a record we cannot read is not proof of anything
                if found.message_id not in exclude_ids:
                    return found
            if page >= pages:
                return None
        log.warning("findMessages on %s still had records after %s pages; gave up looking", instance, _FIND_MAX_PAGES)
        return None

    def _call(self, method: str, path: str, *, sends: bool, json: dict | None = None) -> Any:
        """Make one request and return its JSON body, or raise the classified error.

        `sends` says whether the request could make WhatsApp send something; only then can an error be
        `maybe_sent`.
        """
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as error:
            raise _transport_error(error, sends=sends) from error
        if not response.is_success:
            raise _status_error(response, sends=sends)
        try:
            return response.json()
        except ValueError:
            raise TemporaryError(
                f"HTTP {response.status_code} with a non-JSON body: {response.text[:200]!r}",
                kind="bad_response",
                status_code=response.status_code,
                maybe_sent=sends,
            ) from None


def _transport_error(error: httpx.TransportError, *, sends: bool) -> EvolutionError:
    name = type(error).__name__
    text = str(error) or name
    if isinstance(error, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return PermanentError(f"bad EVOLUTION_API_URL or request: {text}", kind="configuration")
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
        return TemporaryError(f"cannot connect to Evolution API: {text}", kind="connection_error")
    if isinstance(error, httpx.PoolTimeout):
        # Waited for a free connection from our own pool; the request never left this process.
        return TemporaryError(f"no free connection to Evolution API: {text}", kind="timeout")
    # From here on the request was (at least partly) written: Evolution may have acted on it.
    if isinstance(error, httpx.TimeoutException):
        return TemporaryError(f"Evolution API did not answer in time ({name})", kind="timeout", maybe_sent=sends)
    return TemporaryError(
        f"connection to Evolution API broke ({name}: {text})", kind="connection_error", maybe_sent=sends
    )


def _status_error(response: httpx.Response, *, sends: bool) -> EvolutionError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    envelope = isinstance(body, dict) and isinstance(body.get("response"), dict)
    message = body["response"].get("message") if envelope else None
    detail = _describe(message) if message is not None else (response.text[:300] or response.reason_phrase)

    if status == 400:
        first = message[0] if isinstance(message, list) and message else None
        if isinstance(first, dict) and first.get("exists") is False:
            number = first.get("number") or first.get("jid") or "the number"
            return PermanentError(f"{number} is not on WhatsApp", kind="not_on_whatsapp", status_code=status)
        if isinstance(first, str) and _SEND_STEP_ERROR.match(first):
            return TemporaryError(detail, kind="send_error", status_code=status, maybe_sent=sends)
        return PermanentError(detail, kind="validation", status_code=status)
    if status in (401, 403):
        return PermanentError(f"Evolution API refused the apikey: {detail}", kind="unauthorized", status_code=status)
    if status == 404:
        return PermanentError(detail, kind="unknown_instance", status_code=status)
    if status == 429:
        return TemporaryError(detail, kind="rate_limited", status_code=status, retry_after=_retry_after(response))
    if status == 503 and "LICENSE_REQUIRED" in response.text:
        return PermanentError(detail, kind="configuration", status_code=status)
    if status >= 500:
        # Evolution's own 5xx (with its envelope) happen before the send step: the number lookup or an instance
        # that is not connected. A bare 5xx comes from a proxy in between, which cannot tell us what happened.
        return TemporaryError(detail, kind="server_error", status_code=status, maybe_sent=sends and not envelope)
    return PermanentError(f"unexpected HTTP {status}: {detail}", kind="unexpected_status", status_code=status)


def _retry_after(response: httpx.Response) -> float | None:
    """The wait a 429 asks for: ``Retry-After`` in seconds or as an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _describe(message: Any) -> str:
    """Flatten Evolution's `response.message` (string, list, nested list of strings or objects) to text."""
    if isinstance(message, list):
        return "; ".join(_describe(item) for item in message)
    if isinstance(message, dict):
        return ", ".join(f"{key}={value}" for key, value in message.items())
    return str(message)


def _sent_message(body: dict, *, status: str) -> SentMessage:
    key = body["key"]
    message_id, remote_jid = key["id"], key["remoteJid"]
    if not isinstance(message_id, str) or not message_id or not isinstance(remote_jid, str):
        raise ValueError("key.id and key.remoteJid must be strings")
    return SentMessage(
        message_id=message_id,
        remote_jid=remote_jid,
        status=status,
        timestamp=_unix_seconds(body.get("messageTimestamp")),
    )


def _text_of(record: dict) -> str | None:
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    if "conversation" in message:
        return message["conversation"]
    extended = message.get("extendedTextMessage")  # older servers kept this shape
    return extended.get("text") if isinstance(extended, dict) else None


def _furthest_status(record: dict) -> str:
    updates = record.get("MessageUpdate") or []
    statuses = [update.get("status") for update in updates if isinstance(update, dict)] + [record.get("status")]
    known = [status for status in statuses if status in _STATUS_ORDER]
    # A record in Evolution's database was accepted by WhatsApp's server at least as far as PENDING.
    return max(known, key=_STATUS_ORDER.index) if known else "PENDING"


def _unix_seconds(value: Any) -> int | None:
    if isinstance(value, dict) and "low" in value:  # a protobuf Long serialised as {low, high, unsigned}
        value = (value.get("high") or 0) * 2**32 + (value["low"] & 0xFFFFFFFF)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return int(seconds) if math.isfinite(seconds) else None


def _digits(number: str) -> str:
    """The number as Evolution wants it: digits only, no "+" (a JID is passed through untouched)."""
    if "@" in number:
        return number
    return re.sub(r"\D", "", number)


def _jids_for(number: str) -> list[str]:
    """The JIDs Evolution may have stored a message to `number` under, most likely first."""
    digits = _digits(number)
    if "@" in digits:
        return [digits]
    # Evolution stores the JID WhatsApp answered with: usually the digits, sometimes createJid's rewrite of them.
    return list(dict.fromkeys([f"{digits}@s.whatsapp.net", create_jid(digits)]))


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # naive datetimes are taken as UTC, like Django's USE_TZ
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # What httpx.Client builds when given none (verify=True, the environment's SSL_CERT_FILE/DIR), made once per
    # process: loading the CA bundle is ~40 ms of CPU, paid by each thread's client otherwise.
    return httpx.create_ssl_context()


# --- one client per thread ---------------------------------------------------------------------------------------

# Each thread has its own client (its own connection pool): a worker's 16 threads sharing one pool queued on its
# lock, and the pool's bookkeeping under that lock grew with the number of requests in flight (py-spy: 12 % of a
# drain worker's samples). A thread sends one request at a time, so its pool holds one keep-alive socket: as many
# sockets per process as threads using it, as with the shared pool under full load.
_local = threading.local()


def get_client() -> EvolutionClient:
    """This thread's client, built on first use from django.conf.settings.

    Keyed by the settings and the process id: a Celery prefork child never reuses its parent's sockets, and a
    test that overrides EVOLUTION_API_URL gets a client for that URL. A thread's clients are closed once the
    thread is gone (or at exit).
    """
    key = (
        os.getpid(),
        settings.EVOLUTION_API_URL,
        settings.EVOLUTION_API_KEY,
        float(settings.EVOLUTION_TIMEOUT_SECONDS),
        float(settings.EVOLUTION_CONNECT_TIMEOUT_SECONDS),
    )
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
        weakref.finalize(threading.current_thread(), _close_all, clients)
    client = clients.get(key)
    if client is None:
        client = clients[key] = EvolutionClient(base_url=key[1], api_key=key[2], timeout=key[3], connect_timeout=key[4])
    return client


def _close_all(clients: dict[tuple, EvolutionClient]) -> None:
    for client in clients.values():
        client.close()
    clients.clear()
