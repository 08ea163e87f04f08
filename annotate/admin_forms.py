"""Reading the console's form fields: text in, typed values out, or an error naming the field.

The services (`service.generation.jobs`, `service.studies.study`) check ranges and meanings;
this only turns
the browser's strings into numbers, so that "ten" in a number box reads as a clear message in
the form rather than a crash.
"""

from __future__ import annotations

from werkzeug.datastructures import MultiDict


class FormError(ValueError):
    """A form field could not be read as the type it needs; the message names the field."""


def int_field(form: MultiDict[str, str], name: str) -> int:
    """The field as a whole number; FormError otherwise (blank included)."""
    raw = form.get(name, "").strip()
    try:
        return int(raw)
    except ValueError:
        raise FormError(f"{name} must be a whole number, got {raw!r}") from None


def optional_int_field(form: MultiDict[str, str], name: str) -> int | None:
    """The field as a whole number, or None when left blank."""
    return int_field(form, name) if form.get(name, "").strip() else None


def float_field(form: MultiDict[str, str], name: str) -> float:
    """The field as a number; FormError otherwise."""
    raw = form.get(name, "").strip()
    try:
        return float(raw)
    except ValueError:
        raise FormError(f"{name} must be a number, got {raw!r}") from None
