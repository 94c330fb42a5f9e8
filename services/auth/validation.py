"""Field rules for accounts. Each check returns a normalised value or raises
FieldError naming the field, so a request's violations can be reported together."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from services.auth.storage import DISPLAY_NAME_MAX, ORGANIZATION_MAX, USERNAME_MAX

USERNAME_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{3,{USERNAME_MAX}}}")


class FieldError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def username(value: str, field: str = "username") -> str:
    # ASCII only: Unicode letters would allow look-alike names ("аdmin" with a Cyrillic a).
    if not USERNAME_PATTERN.fullmatch(value):
        raise FieldError(field, f"must be 3-{USERNAME_MAX} characters of letters, digits, '.', '_' or '-'")
    return value


def phone(value: str, region: str = "", field: str = "phone") -> str:
    """The number in E.164 form. National forms need `region` (ISO 3166 alpha-2, e.g. "CN")."""
    value = value.strip()
    if not value:
        raise FieldError(field, "is required")
    region = region.strip().upper()
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise FieldError("phone_region", f"unknown region {region!r}; use an ISO 3166 code such as CN or GB")
    if not value.startswith("+") and not region:
        raise FieldError(
            field, "use the international form starting with + and the country code, or set phone_region"
        )
    try:
        number = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException:
        raise FieldError(field, "is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError(field, "is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _printable(value: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value)


def display_name(value: str, field: str = "display_name") -> str:
    value = value.strip()
    if not 1 <= len(value) <= DISPLAY_NAME_MAX:
        raise FieldError(field, f"must be 1-{DISPLAY_NAME_MAX} characters")
    if not _printable(value):
        raise FieldError(field, "must not contain control or invisible formatting characters")
    return value


def organization(value: str, field: str = "organization") -> str:
    value = value.strip()
    if not 1 <= len(value) <= ORGANIZATION_MAX:
        raise FieldError(field, f"must be 1-{ORGANIZATION_MAX} characters")
    if not _printable(value):
        raise FieldError(field, "must not contain control or invisible formatting characters")
    return value
