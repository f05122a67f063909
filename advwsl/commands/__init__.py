"""Click commands of the ``advwsl`` CLI (wiring only) and the option parsing they share."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError


def json_option(text: str | None, name: str) -> dict[str, Any]:
    """Parse a command-line option holding a JSON object (``{}`` when empty); a clear error otherwise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object such as '{{\"input_size\": 16}}', got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {text!r}")
    return value
