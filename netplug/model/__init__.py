"""Pydantic models: pure data, no I/O. May import: pydantic, netaddr, netplug.errors."""

from __future__ import annotations

from pydantic import ValidationError

from netplug.errors import DelegateError, InvalidField, NetplugError


def first_error(exc: ValidationError) -> tuple[str, dict]:
    """(dotted field path, pydantic's error dict) of the first error: every error message
    netplug gives about a document names the field this way."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]), first


def field_path(base: str, loc: tuple) -> str:
    """A pydantic location as Kubernetes writes a field path under `base`:
    ("domain", "devices", "interfaces", 0, "ports", 0, "port") ->
    "<base>.domain.devices.interfaces[0].ports[0].port"."""
    path = base
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid_field(exc: ValidationError, base: str) -> InvalidField:
    """The first error of a model validated at `base`, naming its field path and value."""
    first = exc.errors()[0]
    value = None if first["type"] == "missing" else first.get("input")
    return InvalidField(field_path(base, first["loc"]), value, first["msg"].removeprefix("Value error, "))


def one_line(exc: BaseException) -> str:
    """An error as the one line a command prints: netplug's message, a file error with its
    path, a model error with its field and value."""
    if isinstance(exc, DelegateError) and exc.plugin:
        return f"{exc.plugin} {exc.command}: {exc.msg}"  # the plugin's own message, and whose
    if isinstance(exc, NetplugError):
        return exc.msg
    if isinstance(exc, ValidationError):
        return invalid_field(exc, "").msg
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
