"""Phone numbers as people type them, turned into the E.164 form the console stores."""
import unicodedata

import phonenumbers
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
        number = phonenumbers.parse(text, region)
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
