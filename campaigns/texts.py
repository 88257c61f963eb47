"""A campaign's text template: ``Hola {name}, tu cita es el {date}``.

Placeholders are a contact's ``name``, ``phone`` and any key of its ``fields``; ``{{`` and ``}}`` are literal
braces. Only plain names are allowed (no ``{a.b}``, ``{a[0]}`` or ``{a:>10}``): a template is data an operator
types, not code. A placeholder a contact has no value for is found before launch (``missing_placeholders``),
never at send time.
"""
import string
from dataclasses import dataclass

from django.core.exceptions import ValidationError

_FORMATTER = string.Formatter()
EXAMPLES_SHOWN = 5


def placeholders(template: str) -> list[str]:
    """The placeholder names of ``template``, in order, each once; raises ValidationError for a broken one."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as error:  # "{name" or "}"
        raise ValidationError({"text": [f"The template has a stray brace ({error}); write {{{{ or }}}} for a literal one."]})
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValidationError({"text": [f'"{{{name}}}" is not a placeholder: use a plain name such as {{name}}.']})
        if name not in names:
            names.append(name)
    return names


def values_of(*, phone: str, name: str, fields: dict) -> dict[str, str]:
    """What a contact fills placeholders with; empty values count as missing."""
    values = {str(key): str(value) for key, value in (fields or {}).items() if value not in (None, "")}
    if name:
        values["name"] = name
    values["phone"] = phone
    return values


def render(template: str, values: dict[str, str]) -> str:
    """The text for one contact. Call only once ``missing_placeholders`` found nothing missing for it."""
    return template.format_map(values)


@dataclass(frozen=True)
class Missing:
    placeholder: str
    count: int
    examples: list[str]  # phones of the first few contacts without it

    def __str__(self):
        shown = ", ".join(self.examples)
        more = f" and {self.count - len(self.examples)} more" if self.count > len(self.examples) else ""
        return f"{{{self.placeholder}}} is missing for {self.count} contact{'s' if self.count != 1 else ''}: {shown}{more}"


def missing_placeholders(template: str, contacts) -> list[Missing]:
    """For each placeholder some contacts have no value for: how many and which. ``contacts`` yields
    ``(phone, name, fields)``."""
    names = placeholders(template)
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for phone, name, fields in contacts:
        values = values_of(phone=phone, name=name, fields=fields)
        for placeholder in names:
            if placeholder not in values:
                counts[placeholder] = counts.get(placeholder, 0) + 1
                if len(examples.setdefault(placeholder, [])) < EXAMPLES_SHOWN:
                    examples[placeholder].append(phone)
    return [Missing(name, counts[name], examples[name]) for name in names if name in counts]


SAMPLE = {"phone": "+5511987654321", "name": "Ana", "fields": {}}  # when no recipient is chosen yet


def preview(template: str, *, phone: str, name: str, fields: dict) -> str:
    """What one contact would receive, or why the template cannot be written for them: the admin's preview, live
    as the operator types and on the saved campaign."""
    label = f"{name} ({phone})" if name else phone
    if not template.strip():
        return f"Type the text to see what {label} would receive."
    try:
        placeholders(template)
        return f"To {label}: {render(template, values_of(phone=phone, name=name, fields=fields))}"
    except ValidationError as error:
        return f"Not a template yet: {' '.join(error.messages)}"
    except KeyError as error:
        return f"To {label}: cannot be written ({{{error.args[0]}}} has no value)."
