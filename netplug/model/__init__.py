"""Pydantic models: pure data, no I/O. May import: pydantic, netaddr, netplug.errors."""

from __future__ import annotations

from pydantic import ValidationError


def first_error(exc: ValidationError) -> tuple[str, dict]:
    """(dotted field path, pydantic's error dict) of the first error: every error message
    netplug gives about a document names the field this way."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]), first
