"""An Evolution-API-compatible server for tests, demos and benchmarks.

It answers like Evolution API 2.3.x (see /work/shared/evolution-api-contract.md) without WhatsApp: everything
lives in memory and is lost on restart. Run it with `python manage.py evolution_sandbox`, or in a thread with
`evolution.sandbox.in_thread.run_in_thread`.

Evolution routes (header `apikey`: the global key, or an instance's token on that instance's routes):
    POST /message/sendText/{instance}     {"number": "5511999999999", "text": "hi", "delay": 0}
    GET  /instance/connectionState/{instance}
    GET  /instance/fetchInstances[?instanceName=]
    POST /chat/findMessages/{instance}    {"where": {"key": {id, remoteJid, fromMe}, "messageTimestamp": {gte, lte}},
                                           "page": 1, "offset": 50}
    POST /webhook/set/{instance}          {"webhook": {"enabled", "url", "headers", "byEvents", "events"}}
    GET  /webhook/find/{instance}
Checks run in Evolution's order: unknown instance 404 (even without a key), then 401, then body validation 400.
Anything else is 404 {"message": ["Cannot POST /x"]}.

A send's key.remoteJid is Evolution's createJid of the number (evolution/jids.py): "+", "(", ")" and spaces go,
"<digits>@s.whatsapp.net", with the MX/AR/BR mobile-digit rewrites. Every sendText first waits latency_ms (plus
the body's "delay"), then the outcome is chosen by the LAST 4 DIGITS of the number as sent:
    ...0000  not on WhatsApp: 400 {"message": [{"jid": ..., "exists": false, "number": ...}]}
    ...0500  always 500 {"message": "Connection Closed"} (nothing is sent)
    ...0502  500 "Connection Closed" twice, then sent (counted per instance and number; reset clears it)
    ...0400  always 400 ["Error: Connection Closed"], the ambiguous send-step error; nothing is recorded, so
             findMessages finds nothing and a resend is safe
    ...0429  429 "Too Many Requests" with Retry-After: 1 once, then sent (counted like 0502): not Evolution's own
             answer (it has no rate limit) but a rate-limiting proxy's in front of it (nginx limit_req, a gateway)
    ...0408  hangs: the message IS recorded as sent (findMessages finds it, webhooks fire), then the response
             waits hang_seconds; models "timed out, but WhatsApp sent it"
    other    201, key.id "3EB0" + 16 upper-case hex digits, status PENDING
While an instance is not "open", every sendText answers 500 "Connection Closed".

After a send, when a webhook with a url is set, the sandbox POSTs `send.message` (the 201 body) right away,
then `messages.update` (`{keyId, remoteJid, fromMe, status, instanceId, messageId}`) as WhatsApp's acks come in:
SERVER_ACK 50 ms after the send, DELIVERY_ACK `delivered_after` seconds after the send (0.1 by default), then READ
`read_after` seconds after the DELIVERY_ACK (2 by default; "never" for a contact who never opens it). Both are
`--delivered-after` / `--read-after` options and can be changed at run time (`/_sandbox/receipts`); a send uses
the values in force when it was made. findMessages shows the same statuses in `MessageUpdate`. Webhooks are tried
once (Evolution retries up to 10 times); a failure is logged and never blocks a send. `headers.jwt_key` is not
turned into a JWT.

Sandbox-only control endpoints (no apikey):
    POST /_sandbox/reset                    forget messages and 0502 counters and drop pending acks; instances
                                            back to "open", latency back to its start value (webhooks are kept)
    GET  /_sandbox/messages[?instance=]     everything sent, oldest first:
                                            [{instance, number, text, key, timestamp, status}]
    POST /_sandbox/instances/{name}/state   {"state": "open|close|connecting"} (emits connection.update)
    POST /_sandbox/latency                  {"latency_ms": N}
    GET|POST /_sandbox/receipts             {"delivered_after": S, "read_after": S or null}: seconds from a send to
                                            its DELIVERY_ACK, and from that to its READ (null: never read); a POST
                                            may give either; reset puts back the start values
    POST /_sandbox/inbound                  {"instance", "number", "text", "push_name"}: emits messages.upsert
                                            (fromMe false) and answers once the webhook POST has finished,
                                            with {"event", "data", "webhook_status"}
"""
from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from evolution.jids import create_jid

INSTANCE_STATES = ("open", "close", "connecting")
ACK_DELAY_SECONDS = 0.05  # from a send to its SERVER_ACK (WhatsApp's server took it)
DELIVERED_AFTER_SECONDS = 0.1  # from a send to its DELIVERY_ACK (the phone got it)
READ_AFTER_SECONDS = 2.0  # from the DELIVERY_ACK to the READ (the contact opened it); None: never
WEBHOOK_TIMEOUT_SECONDS = 10.0
WEBHOOK_EVENTS = (
    "APPLICATION_STARTUP", "QRCODE_UPDATED", "MESSAGES_SET", "MESSAGES_UPSERT", "MESSAGES_EDITED",
    "MESSAGES_UPDATE", "MESSAGES_DELETE", "SEND_MESSAGE", "CONTACTS_SET", "CONTACTS_UPSERT", "CONTACTS_UPDATE",
    "PRESENCE_UPDATE", "CHATS_SET", "CHATS_UPSERT", "CHATS_UPDATE", "CHATS_DELETE", "GROUPS_UPSERT",
    "GROUP_UPDATE", "GROUP_PARTICIPANTS_UPDATE", "CONNECTION_UPDATE", "LABELS_EDIT", "LABELS_ASSOCIATION",
    "CALL", "TYPEBOT_START", "TYPEBOT_CHANGE_STATUS",
)
# Express writes compact UTF-8 JSON ("Você", not "Voc\\u00ea").
_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}


def json_response(body, *, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def evolution_error(status: int, message) -> web.Response:
    """Evolution's error envelope. `message` is a list for its own exceptions, a string for foreign ones."""
    body = {"status": status, "error": _REASONS.get(status, "Internal Server Error"), "response": {"message": message}}
    return json_response(body, status=status)


@dataclass
class StoredMessage:
    record: dict  # exactly what findMessages returns for it
    instance: str
    number: str
    text: str
    received_at: float = field(default_factory=time.time)  # for tests of pacing: what Evolution saw, to the ms


@dataclass
class Instance:
    name: str
    token: str
    owner_jid: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "open"
    webhook: dict | None = None
    messages: list[StoredMessage] = field(default_factory=list)  # oldest first
    by_key_id: dict[str, StoredMessage] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: _utc_iso(datetime.now(timezone.utc)))


class Sandbox:
    """The sandbox's state and its request handlers."""

    def __init__(self, *, api_key, instances, latency_ms, hang_seconds, instance_tokens, quiet,
                 delivered_after=DELIVERED_AFTER_SECONDS, read_after=READ_AFTER_SECONDS):
        self.api_key = api_key
        self.instances = {
            name: Instance(
                name=name,
                token=instance_tokens.get(name) or str(uuid.uuid4()).upper(),
                owner_jid=f"55119{index:08d}@s.whatsapp.net",
            )
            for index, name in enumerate(instances, start=1)
        }
        self.initial_latency_ms = self.latency_ms = latency_ms
        self.hang_seconds = hang_seconds
        self.initial_receipts = self.receipts = _receipt_delays(delivered_after, read_after)
        self.quiet = quiet
        self.failures_served: dict[tuple[str, str], int] = {}  # (instance, digits) -> 500s given so far, for 0502
        self.server_url = ""  # learnt from requests; Evolution puts its SERVER_URL in every webhook
        self._http: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task] = set()

    # --- plumbing --------------------------------------------------------------------------------------------

    def guarded(self, handler):
        """Wrap an instance route with Evolution's guards: the instance must exist, then the key must fit."""

        async def guarded_handler(request: web.Request) -> web.Response:
            instance = self.instances.get(request.match_info["instance"])
            if instance is None:
                return evolution_error(404, [f'The "{request.match_info["instance"]}" instance does not exist'])
            if request.headers.get("apikey") not in (self.api_key, instance.token):
                return evolution_error(401, "Unauthorized")
            self.server_url = f"{request.scheme}://{request.host}"
            return await handler(request, instance)

        return guarded_handler

    def spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._background.discard)

    async def close(self, _app: web.Application | None = None) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def log(self, line: str) -> None:
        print(f"[evolution-sandbox] {line}", flush=True)

    # --- POST /message/sendText/{instance} -----------------------------------------------------------------

    async def send_text(self, request: web.Request, instance: Instance) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        errors = _text_message_errors(body)
        if errors:
            return evolution_error(400, [errors])  # Evolution nests its validation messages in a second array
        number, text = body["number"], body["text"]
        if not text.strip():
            return evolution_error(400, ["Text is required"])

        pause_ms = self.latency_ms + (body.get("delay") or 0)
        if pause_ms > 0:
            await asyncio.sleep(pause_ms / 1000)
        if instance.state != "open":
            return evolution_error(500, "Connection Closed")

        digits = re.sub(r"\D", "", number.split("@")[0])
        scripted = digits[-4:]
        jid = create_jid(number)
        if scripted == "0000" or not digits:
            return evolution_error(400, [{"jid": jid, "exists": False, "number": number}])
        if scripted == "0500":
            return evolution_error(500, "Connection Closed")
        if scripted == "0502":
            served = self.failures_served.get((instance.name, digits), 0)
            if served < 2:
                self.failures_served[(instance.name, digits)] = served + 1
                return evolution_error(500, "Connection Closed")
        if scripted == "0400":
            return evolution_error(400, ["Error: Connection Closed"])
        if scripted == "0429":
            served = self.failures_served.get((instance.name, digits), 0)
            if served < 1:
                self.failures_served[(instance.name, digits)] = served + 1
                return web.json_response(
                    {"message": "Too Many Requests"}, status=429, headers={"Retry-After": "1"}, dumps=_dumps
                )

        stored = self.record(instance, number=number, text=text, jid=jid, from_me=True)
        response = _send_response(stored.record)
        self.spawn(self.acknowledge(instance, stored, response))
        if scripted == "0408":
            await asyncio.sleep(self.hang_seconds)
        return json_response(response, status=201)

    def record(self, instance: Instance, *, number: str, text: str, jid: str, from_me: bool, push_name="Você"):
        record = {
            "id": "c" + secrets.token_hex(12),  # the database id (a cuid in Evolution)
            "key": {"remoteJid": jid, "fromMe": from_me, "id": "3EB0" + secrets.token_hex(8).upper()},
            "pushName": push_name,
            "messageType": "conversation",
            "message": {"conversation": text},
            "messageTimestamp": int(time.time()),
            "instanceId": instance.id,
            "source": "web" if from_me else "android",
            "contextInfo": {},
            "MessageUpdate": [],
        }
        stored = StoredMessage(record=record, instance=instance.name, number=number, text=text)
        instance.messages.append(stored)
        instance.by_key_id[record["key"]["id"]] = stored
        return stored

    async def acknowledge(self, instance: Instance, stored: StoredMessage, sent_body: dict) -> None:
        """What WhatsApp does after a send: Evolution emits send.message, then the acks arrive one by one, each
        at its time from the send (the delays in force when the send was made). One task per message, so a
        receiver sees that message's events in order."""
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        delivered_after, read_after = self.receipts["delivered_after"], self.receipts["read_after"]
        schedule = [("SERVER_ACK", min(ACK_DELAY_SECONDS, delivered_after)), ("DELIVERY_ACK", delivered_after)]
        if read_after is not None:
            schedule.append(("READ", delivered_after + read_after))
        await self.emit(instance, "send.message", sent_body)
        for status, after in schedule:
            await asyncio.sleep(max(0.0, sent_at + after - loop.time()))
            stored.record["MessageUpdate"].append({"status": status})
            update = {
                "keyId": stored.record["key"]["id"],
                "remoteJid": stored.record["key"]["remoteJid"],
                "fromMe": True,
                "status": status,
                "instanceId": instance.id,
                "messageId": stored.record["id"],
            }
            await self.emit(instance, "messages.update", update)

    # --- webhooks --------------------------------------------------------------------------------------------

    async def emit(self, instance: Instance, event: str, data: dict) -> int | None:
        """POST one event to the instance's webhook, once. Returns the receiver's HTTP status, or None when
        nothing was delivered."""
        hook = instance.webhook
        name = event.replace(".", "_").upper()
        if not hook or not hook["enabled"] or not hook["url"] or name not in hook["events"]:
            return None
        url = f"{hook['url']}/{name.replace('_', '-').lower()}" if hook["webhookByEvents"] else hook["url"]
        envelope = {
            "event": event,
            "instance": instance.name,
            "data": data,
            "destination": hook["url"],
            "date_time": datetime.now().isoformat(timespec="milliseconds") + "Z",  # local time, "Z" anyway
            "sender": instance.owner_jid,
            "server_url": self.server_url,
            "apikey": None,  # Evolution sends it only with AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true
        }
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS))
        try:
            async with self._http.post(url, json=envelope, headers=hook["send_headers"]) as response:
                await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            self.log(f"webhook {event} for {instance.name} to {url} failed: {type(error).__name__}: {error}")
            return None
        if response.status >= 300:
            self.log(f"webhook {event} for {instance.name} to {url} answered {response.status}")
        return response.status

    async def set_webhook(self, request: web.Request, instance: Instance) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        hook = body.get("webhook")
        errors = _webhook_errors(hook)
        if errors:
            return evolution_error(400, [errors])
        if not _is_url(hook["url"]):
            return evolution_error(400, ['Invalid "url" property'])
        enabled = bool(hook["enabled"])
        if not enabled:
            events = []
        else:
            events = list(hook.get("events") or []) or list(WEBHOOK_EVENTS)  # an empty list means every event
        now = _utc_iso(datetime.now(timezone.utc))
        headers = {str(k): str(v) for k, v in (hook.get("headers") or {}).items() if k != "jwt_key"}
        instance.webhook = {
            "id": (instance.webhook or {}).get("id") or "c" + secrets.token_hex(12),
            "url": hook["url"],
            "headers": hook.get("headers") or None,
            "enabled": enabled,
            "events": events,
            "webhookByEvents": bool(hook.get("byEvents")),
            "webhookBase64": bool(hook.get("base64")),
            "createdAt": (instance.webhook or {}).get("createdAt") or now,
            "updatedAt": now,
            "instanceId": instance.id,
            "send_headers": headers,
        }
        return json_response(_public_webhook(instance.webhook), status=201)

    async def find_webhook(self, request: web.Request, instance: Instance) -> web.Response:
        return json_response(_public_webhook(instance.webhook) if instance.webhook else None)

    # --- instance and chat routes ----------------------------------------------------------------------------

    async def connection_state(self, request: web.Request, instance: Instance) -> web.Response:
        return json_response({"instance": {"instanceName": instance.name, "state": instance.state}})

    async def fetch_instances(self, request: web.Request) -> web.Response:
        key = request.headers.get("apikey")
        wanted = request.query.get("instanceName")
        if wanted and wanted not in self.instances:
            return evolution_error(404, [f'The "{wanted}" instance does not exist'])
        visible = [i for i in self.instances.values() if key in (self.api_key, i.token)]
        if not visible:
            return evolution_error(401, "Unauthorized")
        self.server_url = f"{request.scheme}://{request.host}"
        rows = [_instance_row(i) for i in visible if not wanted or i.name == wanted]
        return json_response(rows)

    async def find_messages(self, request: web.Request, instance: Instance) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        where = body.get("where") or {}
        key = where.get("key") or {}
        window = where.get("messageTimestamp") or {}
        bounds = None
        if window.get("gte") and window.get("lte"):  # like Evolution, one bound alone is ignored
            bounds = (_js_date_seconds(window["gte"]), _js_date_seconds(window["lte"]))
            if None in bounds:
                return evolution_error(500, "Invalid time value")

        if key.get("id"):
            stored = instance.by_key_id.get(key["id"])
            candidates = [stored] if stored else []
        else:
            candidates = reversed(instance.messages)  # newest first
        records = [s.record for s in candidates if _matches(s.record, where, key, bounds)]

        page_size = _positive_int(body.get("offset"), 50)
        page = _positive_int(body.get("page"), 1)
        skip = page_size * (page - 1)
        return json_response(
            {
                "messages": {
                    "total": len(records),
                    "pages": math.ceil(len(records) / page_size),
                    "currentPage": page,
                    "records": records[skip : skip + page_size],
                }
            }
        )

    async def not_found(self, request: web.Request) -> web.Response:
        return evolution_error(404, [f"Cannot {request.method.upper()} {request.path_qs}"])

    # --- /_sandbox control endpoints -------------------------------------------------------------------------

    async def reset(self, request: web.Request) -> web.Response:
        for task in list(self._background):
            task.cancel()  # no late acks for forgotten messages reach the next test's receiver
        for instance in self.instances.values():
            instance.messages.clear()
            instance.by_key_id.clear()
            instance.state = "open"
        self.failures_served.clear()
        self.latency_ms = self.initial_latency_ms
        self.receipts = self.initial_receipts
        return json_response({"reset": True})

    async def list_messages(self, request: web.Request) -> web.Response:
        wanted = request.query.get("instance")
        sent = [
            {
                "instance": s.instance,
                "number": s.number,
                "text": s.text,
                "key": s.record["key"],
                "timestamp": s.record["messageTimestamp"],
                "received_at": s.received_at,
                "status": (s.record["MessageUpdate"] or [{"status": "PENDING"}])[-1]["status"],
            }
            for instance in self.instances.values()
            if not wanted or instance.name == wanted
            for s in instance.messages
            if s.record["key"]["fromMe"]
        ]
        sent.sort(key=lambda row: row["timestamp"])  # stable: keeps send order within a second
        return json_response(sent)

    async def set_state(self, request: web.Request) -> web.Response:
        instance = self.instances.get(request.match_info["name"])
        if instance is None:
            return json_response({"error": f"unknown instance {request.match_info['name']!r}"}, status=404)
        body = await _json_body(request)
        state = body.get("state") if isinstance(body, dict) else None
        if state not in INSTANCE_STATES:
            return json_response({"error": f"state must be one of {', '.join(INSTANCE_STATES)}"}, status=400)
        instance.state = state
        reason = {"open": 200, "close": 428, "connecting": 200}[state]
        update = {"instance": instance.name, "state": state, "statusReason": reason}
        self.spawn(self.emit(instance, "connection.update", update))
        return json_response({"instance": instance.name, "state": state})

    async def set_latency(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        latency = body.get("latency_ms") if isinstance(body, dict) else None
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 0:
            return json_response({"error": "latency_ms must be a non-negative integer"}, status=400)
        self.latency_ms = latency
        return json_response({"latency_ms": latency})

    async def receipt_delays(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await _json_body(request)
            if not isinstance(body, dict) or not body or set(body) - {"delivered_after", "read_after"}:
                return json_response({"error": 'send {"delivered_after": seconds, "read_after": seconds or null}'},
                                     status=400)
            try:
                self.receipts = _receipt_delays(
                    body.get("delivered_after", self.receipts["delivered_after"]),
                    body.get("read_after", self.receipts["read_after"]),
                )
            except ValueError as error:
                return json_response({"error": str(error)}, status=400)
        return json_response(self.receipts)

    async def inbound(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not (isinstance(body, dict) and isinstance(body.get("number"), str) and isinstance(body.get("text"), str)):
            return json_response({"error": 'send {"instance", "number", "text", "push_name"}'}, status=400)
        instance = self.instances.get(body.get("instance") or next(iter(self.instances)))
        if instance is None:
            return json_response({"error": f"unknown instance {body.get('instance')!r}"}, status=404)
        stored = self.record(
            instance,
            number=body["number"],
            text=body["text"],
            jid=create_jid(body["number"]),
            from_me=False,
            push_name=body.get("push_name") or "",
        )
        data = {**_send_response(stored.record), "status": "DELIVERY_ACK"}
        status = await self.emit(instance, "messages.upsert", data)
        return json_response({"event": "messages.upsert", "data": data, "webhook_status": status})


SANDBOX = web.AppKey("sandbox", Sandbox)  # app[SANDBOX] is the state, for in-process inspection


def build_app(
    *,
    api_key: str,
    instances: list[str],
    latency_ms: int = 0,
    hang_seconds: float = 30.0,
    instance_tokens: dict[str, str] | None = None,
    quiet: bool = False,
    delivered_after: float = DELIVERED_AFTER_SECONDS,
    read_after: float | None = READ_AFTER_SECONDS,
) -> web.Application:
    """The sandbox as an aiohttp application. `quiet` logs only non-2xx requests (for benchmarks);
    `delivered_after` and `read_after` (None: never) time the receipts of what it sends."""
    if not instances:
        raise ValueError("the sandbox needs at least one instance")
    sandbox = Sandbox(
        api_key=api_key,
        instances=instances,
        latency_ms=latency_ms,
        hang_seconds=hang_seconds,
        instance_tokens=instance_tokens or {},
        quiet=quiet,
        delivered_after=delivered_after,
        read_after=read_after,
    )
    app = web.Application(middlewares=[_request_logger(sandbox)], client_max_size=16 * 1024**2)
    app[SANDBOX] = sandbox
    app.on_cleanup.append(sandbox.close)
    guarded = sandbox.guarded
    app.router.add_post("/message/sendText/{instance}", guarded(sandbox.send_text))
    app.router.add_get("/instance/connectionState/{instance}", guarded(sandbox.connection_state))
    app.router.add_get("/instance/fetchInstances", sandbox.fetch_instances)
    app.router.add_post("/chat/findMessages/{instance}", guarded(sandbox.find_messages))
    app.router.add_post("/webhook/set/{instance}", guarded(sandbox.set_webhook))
    app.router.add_get("/webhook/find/{instance}", guarded(sandbox.find_webhook))
    app.router.add_post("/_sandbox/reset", sandbox.reset)
    app.router.add_get("/_sandbox/messages", sandbox.list_messages)
    app.router.add_post("/_sandbox/instances/{name}/state", sandbox.set_state)
    app.router.add_post("/_sandbox/latency", sandbox.set_latency)
    app.router.add_get("/_sandbox/receipts", sandbox.receipt_delays)
    app.router.add_post("/_sandbox/receipts", sandbox.receipt_delays)
    app.router.add_post("/_sandbox/inbound", sandbox.inbound)
    app.router.add_route("*", "/{tail:.*}", sandbox.not_found)  # last: Express answers unknown routes with 404
    return app


def _request_logger(sandbox: Sandbox):
    @web.middleware
    async def log_request(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception as error:  # a sandbox bug: answer like Evolution's catch-all does
            sandbox.log(f"{request.method} {request.path_qs} crashed: {error!r}")
            response = evolution_error(500, str(error))
        if not sandbox.quiet or response.status >= 300:
            elapsed_ms = (time.perf_counter() - started) * 1000
            sandbox.log(f"{request.method} {request.path_qs} {response.status} {elapsed_ms:.1f}ms")
        return response

    return log_request


def _receipt_delays(delivered_after, read_after) -> dict:
    """The receipt timing as the sandbox keeps it; ValueError names what is wrong."""
    def seconds(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number of seconds")
        return float(value)

    return {
        "delivered_after": seconds("delivered_after", delivered_after),
        "read_after": None if read_after is None else seconds("read_after", read_after),
    }


# --- request bodies --------------------------------------------------------------------------------------------


async def _json_body(request: web.Request):
    """The JSON body as Express's json() parser leaves it: {} without a JSON content type or body."""
    if request.content_type != "application/json":
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        # body-parser's error has status 400 but no "error" field, so Evolution's handler says "Internal Server Error".
        payload = {"status": 400, "error": "Internal Server Error", "response": {"message": f"Invalid JSON: {error}"}}
        return json_response(payload, status=400)
    return body if isinstance(body, dict) else {}


def _text_message_errors(body: dict) -> list[str]:
    """textMessageSchema's checks, worded like the jsonschema library (a schema description wins)."""
    errors = []
    if "number" in body and not isinstance(body["number"], str):
        errors.append("Invalid format")
    if "text" in body and not isinstance(body["text"], str):
        errors.append("text is not of a type(s) string")
    for flag in ("linkPreview", "mentionsEveryOne"):
        if flag in body and not isinstance(body[flag], bool):
            errors.append(f"{flag} is not of a type(s) boolean")
    if "delay" in body and (not isinstance(body["delay"], int) or isinstance(body["delay"], bool)):
        errors.append("Enter a value in milliseconds")
    for required in ("number", "text"):
        if required not in body:
            errors.append(f'instance requires property "{required}"')
    return errors


def _webhook_errors(hook) -> list[str]:
    if not isinstance(hook, dict):
        return ['instance requires property "webhook"']
    errors = []
    if "enabled" in hook and not isinstance(hook["enabled"], bool):
        errors.append("webhook.enabled is not of a type(s) boolean")
    if "url" in hook and not isinstance(hook["url"], str):
        errors.append("webhook.url is not of a type(s) string")
    for index, event in enumerate(hook.get("events") or []):
        if event not in WEBHOOK_EVENTS:
            errors.append(f"webhook.events[{index}] is not one of enum values: {','.join(WEBHOOK_EVENTS)}")
    for required in ("enabled", "url"):
        if required not in hook:
            errors.append(f'webhook requires property "{required}"')
    return errors


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _js_date_seconds(value) -> int | None:
    """What Evolution does with a time bound: floor(new Date(value).getTime() / 1000). ISO strings or ms."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.floor(value / 1000)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return math.floor(moment.timestamp())
    return None


def _matches(record: dict, where: dict, key: dict, bounds: tuple[int, int] | None) -> bool:
    record_key = record["key"]
    if key.get("id") and record_key["id"] != key["id"]:
        return False
    if key.get("remoteJid") and record_key["remoteJid"] != key["remoteJid"]:
        return False
    if key.get("fromMe") and not record_key["fromMe"]:  # fromMe:false is ignored, as in Evolution
        return False
    for field_name in ("id", "source", "messageType"):
        if where.get(field_name) and record[field_name] != where[field_name]:
            return False
    if bounds and not bounds[0] <= record["messageTimestamp"] <= bounds[1]:
        return False
    return True


def _positive_int(value, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# --- response shapes -------------------------------------------------------------------------------------------


def _send_response(record: dict) -> dict:
    return {
        "key": record["key"],
        "pushName": record["pushName"],
        "status": "PENDING",
        "message": record["message"],
        "contextInfo": {},
        "messageType": record["messageType"],
        "messageTimestamp": record["messageTimestamp"],
        "instanceId": record["instanceId"],
        "source": record["source"],
    }


def _public_webhook(hook: dict) -> dict:
    return {name: value for name, value in hook.items() if name != "send_headers"}


def _instance_row(instance: Instance) -> dict:
    return {
        "id": instance.id,
        "name": instance.name,
        "connectionStatus": instance.state,
        "ownerJid": instance.owner_jid,
        "profileName": instance.name,
        "profilePicUrl": None,
        "integration": "WHATSAPP-BAILEYS",
        "number": instance.owner_jid.split("@")[0],
        "businessId": None,
        "token": instance.token,
        "clientName": "evolution_sandbox",
        "disconnectionReasonCode": None,
        "disconnectionObject": None,
        "disconnectionAt": None,
        "createdAt": instance.created_at,
        "updatedAt": instance.created_at,
        "_count": {"Message": len(instance.messages), "Contact": 0, "Chat": 0},
    }


def _utc_iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
