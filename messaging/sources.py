"""Every waiting message of one source at once (``OutboundMessage.source``, e.g. a campaign's run): cancel, hold,
and give held ones a send time again. Each is one conditional UPDATE on the queryset, so a message a worker has
claimed already is left to finish."""
import logging
from datetime import datetime

from messaging.models import OutboundMessage

log = logging.getLogger("messaging")


def cancel_messages_from(*, source: str) -> int:
    """Cancel every message of ``source`` not sending yet (a cancelled campaign's run), in one UPDATE."""
    cancelled = OutboundMessage.objects.cancel_waiting(source=source)
    log.info("source=%s cancelled %s waiting messages", source, cancelled)
    return cancelled


def hold_messages_from(*, source: str) -> int:
    """Hold every message of ``source`` not sending yet (a paused campaign's run): none is sent until
    ``schedule_held_messages`` gives it a send time again. One being sent finishes."""
    held = OutboundMessage.objects.hold_waiting(source=source)
    log.info("source=%s held %s waiting messages", source, held)
    return held


def schedule_held_messages(*, times: dict[int, datetime]) -> int:
    """Give held messages a send time again (``{message id: when}``); beat releases each when it comes."""
    return OutboundMessage.objects.schedule_held(times)
