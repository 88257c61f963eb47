"""Phone numbers as people type them, turned into the E.164 form the console stores."""
import re
import unicodedata

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from django.conf import settings
from django.core.exceptions import ValidationError


def ascii_digits(text: str) -> str:
    """``text`` with every decimal digit in ASCII (Arabic-Indic "٩", full-width "９") and a full-width plus as "+":
    the one normalisation for storing a phone and for searching by one."""
    if text.isascii():
        return text  # the usual case, a campaign's 100,000 phones: nothing to change
    return "".join(
        str(unicodedata.decimal(ch)) if ch.isdecimal() else "+" if ch == "\uff0b" else ch for ch in text
    )


def phone_digits(text: str) -> str:
    """Only the digits of what was typed, in ASCII: what a search by phone compares."""
    return "".join(ch for ch in ascii_digits(text) if ch.isdigit())


def normalize_phone(raw: str) -> str:
    """Return ``raw`` as E.164 (``+5511987654321``) or raise ValidationError.

    "+55 11 98765-4321", "5511987654321" and "(55) 11 98765 4321" are the same number. Digits without "+" are
    read in MESSAGING_DEFAULT_REGION when one is set, otherwise as a full international number.
    """
    text = ascii_digits((raw or "").strip())
    if not text:
        raise ValidationError("This field may not be blank.", code="blank")
    region = settings.MESSAGING_DEFAULT_REGION
    if not text.startswith("+") and region is None:
        text = "+" + text
    try:
        number = _international(text) or phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValidationError("Enter a phone number with its country code, e.g. +5511987654321.", code="invalid")
    if not phonenumbers.is_valid_number(number):
        # A valid number is always a possible one, so the cheaper check only chooses the message (asked first, it
        # was a tenth of validating a bulk request).
        if not phonenumbers.is_possible_number(number):
            raise ValidationError("This is not a possible phone number for its country.", code="invalid")
        # "11 98765-4321" typed without Brazil's 55 reads as +1 198..., a length the US allows but no US number
        # has: a number that is merely possible where it lands is almost always a missing country code.
        region = phonenumbers.region_code_for_country_code(number.country_code)
        raise ValidationError(
            f"+{number.country_code} {phonenumbers.national_significant_number(number)} is not a valid number in "
            f"{region}: add the country code (e.g. +55 11 98765-4321), or set MESSAGING_DEFAULT_REGION for numbers "
            "typed without one.",
            code="invalid",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# "+55 11 98765-4321", "+5511987654321": a plus, then digits with spaces or hyphens between them, the shape
# almost every API caller and import sends.
_INTERNATIONAL = re.compile(r"\+[1-9][0-9 -]{5,40}[0-9]")


def _international(text: str) -> phonenumbers.PhoneNumber | None:
    """The PhoneNumber ``phonenumbers.parse`` returns for ``text``, when ``text`` is an international number of the
    plain shape above and nothing in it asks for parse's rewriting; otherwise None (parse decides).

    parse reads the digits one character at a time, through Unicode tables, and was more than half of validating
    a bulk request. For this shape its answer is the country code (the first 1-3 digits that are one) and the rest
    as the national number, unless the country's national prefix matches at its start (parse may strip it:
    "+44 0 20...") or it starts with 0 (Italy keeps leading zeros apart): then parse does it. A test compares both
    on every country's example numbers and on random digits."""
    if not _INTERNATIONAL.fullmatch(text):
        return None
    digits = text[1:].replace(" ", "").replace("-", "")
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[length:]
    if len(national) < 2 or len(national) > 17 or national[0] == "0":
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code)
    )
    prefix = metadata.national_prefix_for_parsing
    if prefix and re.match(prefix, national):  # (re keeps the compiled patterns)
        return None
    return phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
