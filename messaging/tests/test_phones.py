"""normalize_phone reads plain international numbers without phonenumbers.parse; what it reads must be what parse
would have read, for every country."""
import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from messaging.phones import _international, normalize_phone


def _parsed(text):
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def _example_numbers():
    numbers = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in vars(PhoneNumberType).values():
            if isinstance(kind, int) and (number := phonenumbers.example_number_for_type(region, kind)):
                numbers.append(number)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        if number := phonenumbers.example_number_for_non_geo_entity(code):
            numbers.append(number)
    return numbers


def _random_texts(seed=20261201, per_code=40):
    """Digits after every country code: of every length, some starting with 0 or with the country's national
    prefix, with and without spaces and hyphens between them."""
    rng = random.Random(seed)
    texts = []
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for _ in range(per_code):
            first = rng.choice(["", "0", "1", "9", "00", "8", str(rng.randint(0, 99))])
            national = first + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 16)))
            text = f"+{code}{national}"
            if rng.random() < 0.5:
                text = "+" + "".join(ch + rng.choice(["", "", "", "", " ", "-", "  ", " - ", "--"])
                                     for ch in text[1:]).rstrip(" -")
            texts.append(text)
    return texts


def _taken_and_agreeing(texts) -> int:
    """How many of ``texts`` the shortcut reads, asserting each reads as parse reads it."""
    taken = 0
    for text in texts:
        fast = _international(text)
        if fast is not None:
            taken += 1
            assert fast == _parsed(text), text
    return taken


def test_every_country_s_example_numbers_read_the_same_as_parse_reads_them():
    examples = _example_numbers()
    texts = [phonenumbers.format_number(number, style) for number in examples
             for style in (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL)]
    taken = _taken_and_agreeing(texts)
    # The shortcut is the usual road, not a dead one: most example numbers go by it.
    assert len(examples) > 1000
    assert taken > 0.8 * len(examples)


def test_random_digits_after_every_country_code_read_the_same_as_parse_reads_them():
    texts = _random_texts()
    assert _taken_and_agreeing(texts) > 0.3 * len(texts)


@pytest.mark.parametrize("text", ["+44 0 20 7946 0958", "+39 06 698 12345", "+1 1 212 555 0100", "+55 0 11 98765 4321"])
def test_a_national_prefix_or_a_leading_zero_after_the_country_code_is_left_to_parse(text):
    assert _international(text) is None


@pytest.mark.parametrize("text, stored", [
    ("+55 11 98765-4321", "+5511987654321"),
    ("+5511987654321", "+5511987654321"),
    ("+44 0 20 7946 0958", "+442079460958"),  # parse strips the national prefix
    ("+39 06 698 12345", "+390669812345"),  # Italy keeps its leading zero
])
def test_a_number_is_stored_the_same_whichever_road_reads_it(text, stored):
    assert normalize_phone(text) == stored
