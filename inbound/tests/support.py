"""Webhooks as Evolution posts them, for tests that post their own (retries, receipts of a chosen id, bursts)."""
import secrets
from datetime import datetime

import httpx

from evolution.webhooks import SECRET_HEADER
from inbound.models import InstanceWebhook

def envelope(event: str, data: dict, *, instance: str = "console") -> dict:
    return {
        "event": event,
        "instance": instance,
        "data": data,
        "destination": "http://console",
        "date_time": datetime.now().isoformat(timespec="milliseconds") + "Z",
        "sender": "5511900000000@s.whatsapp.net",
        "server_url": "http://evolution",
        "apikey": None,
    }


def upsert(phone_digits: str, text: str, *, instance: str = "console", whatsapp_id: str | None = None) -> dict:
    data = {
        "key": {"remoteJid": f"{phone_digits}@s.whatsapp.net", "fromMe": False,
                "id": whatsapp_id or "3EB0" + secrets.token_hex(8).upper()},
        "pushName": "Ana", "status": "DELIVERY_ACK", "message": {"conversation": text},
        "messageType": "conversation", "messageTimestamp": 1717689097, "instanceId": "x", "source": "android",
    }
    return envelope("messages.upsert", data, instance=instance)


def receipt(key_id: str, status: str, *, instance: str = "console") -> dict:
    data = {"keyId": key_id, "remoteJid": "5511987650001@s.whatsapp.net", "fromMe": True, "status": status,
            "instanceId": "x", "messageId": "c123"}
    return envelope("messages.update", data, instance=instance)


def post(url: str, body, *, instance: str = "console", secret: str | None = None, path: str = "",
         client: httpx.Client | None = None) -> httpx.Response:
    if secret is None:
        secret = InstanceWebhook.objects.get(instance=instance).secret
    headers = {SECRET_HEADER: secret} if secret else {}
    target = f"{url}/webhooks/evolution/{instance}{path}"
    kwargs = {"content": body} if isinstance(body, (bytes, str)) else {"json": body}
    return (client or httpx).post(target, headers=headers, timeout=10, **kwargs)
