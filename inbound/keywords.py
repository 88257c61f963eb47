"""How a message is compared with the keyword rules: one word, without case, accents or surrounding punctuation."""
import unicodedata


def normalize_keyword(text: str) -> str:
    """ "  Stop! " -> "STOP", "sáir" -> "SAIR". A message of several words never matches a one-word rule."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.strip().strip(".,;:!?¡¿\"'()[]*_~-").strip().upper()


# The opt-out words the console starts with (English, Spanish, Portuguese); editable in the admin.
DEFAULT_OPT_OUT_KEYWORDS = ("STOP", "BAJA", "SAIR", "PARAR")
DEFAULT_OPT_OUT_REPLY = (
    "You will receive no more messages from us. / No recibirás más mensajes. / Você não receberá mais mensagens."
)


def ensure_default_rules(**kwargs) -> None:
    """Create the opt-out rules when there are no rules at all (a fresh database). A rule an operator disables
    stays disabled; to have none, disable them all, since an empty table gets them back at the next migrate."""
    from inbound.models import KeywordAction, KeywordRule

    if KeywordRule.objects.exists():
        return
    for keyword in DEFAULT_OPT_OUT_KEYWORDS:
        KeywordRule.objects.get_or_create(
            keyword=keyword, defaults={"action": KeywordAction.OPT_OUT, "reply_text": DEFAULT_OPT_OUT_REPLY}
        )
