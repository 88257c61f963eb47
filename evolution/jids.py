"""How Evolution API turns the `number` of a send into a WhatsApp JID.

A port of `src/utils/createJid.ts` (Evolution API 2.3.x). The sandbox uses it to build `key.remoteJid` exactly as
the real server does, and the client uses it to know which JIDs a message to a number may have been stored under
when it reconciles with findMessages.
"""
import re

_KEPT_AS_IS = ("@g.us", "@s.whatsapp.net", "@lid", "@broadcast")
# 13 digits: country code, two-digit area code (DDD), the extra mobile "9", then eight digits.
_BR_MOBILE = re.compile(r"^(\d{2})(\d{2})\d(\d{8})$")


def create_jid(number: str) -> str:
    """Return the JID Evolution API addresses for `number` before asking WhatsApp about it."""
    number = re.sub(r":\d+", "", number, count=1)  # a ":device" suffix
    if any(marker in number for marker in _KEPT_AS_IS):
        return number
    number = re.sub(r"[\s+()]", "", number).split(":")[0].split("@")[0]
    if "-" in number and len(number) >= 23:
        return re.sub(r"[^\d-]", "", number) + "@g.us"  # old-style group id "<creator>-<timestamp>"
    digits = re.sub(r"\D", "", number)
    if len(digits) >= 18:
        return digits + "@g.us"
    digits = _without_mx_ar_mobile_digit(digits)
    digits = _without_br_extra_nine(digits)
    return digits + "@s.whatsapp.net"


def _without_mx_ar_mobile_digit(digits: str) -> str:
    # Mexico (52) and Argentina (54) mobiles are written with a "1"/"9" after the country code that WhatsApp drops.
    if digits[:2] in ("52", "54") and len(digits) == 13:
        return digits[:2] + digits[3:]
    return digits


def _without_br_extra_nine(digits: str) -> str:
    # Brazil kept 8-digit WhatsApp ids for numbers that gained the ninth digit, except in DDDs below 31 and for
    # subscriber numbers starting below 7.
    match = _BR_MOBILE.match(digits)
    if not match or match.group(1) != "55":
        return digits
    area, subscriber = match.group(2), match.group(3)
    if int(subscriber[0]) < 7 or int(area) < 31:
        return digits
    return "55" + area + subscriber
