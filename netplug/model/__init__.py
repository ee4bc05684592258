"""Pydantic models: pure data, no I/O. May import: pydantic, netaddr, netplug.errors."""
