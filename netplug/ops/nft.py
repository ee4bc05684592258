"""nftables through the `nft` program: one JSON document per call, applied atomically."""

from __future__ import annotations

import json
import subprocess

from netplug.errors import FirewallError

NFT = "nft"


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([NFT, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise FirewallError("nft is not installed (Debian package nftables)") from None
    except subprocess.TimeoutExpired:
        raise FirewallError(f"nft {' '.join(args)} did not finish in 30 s") from None


def load(document: dict) -> None:
    """Apply a JSON ruleset document in one transaction (all or nothing)."""
    proc = _run(["-j", "-f", "-"], json.dumps(document))
    if proc.returncode != 0:
        raise FirewallError("nft rejected the ruleset", details=proc.stderr.strip())


def delete_table(family: str, table: str) -> bool:
    """Delete a table; False when it did not exist."""
    proc = _run(["delete", "table", family, table])
    if proc.returncode == 0:
        return True
    if "No such file or directory" in proc.stderr:
        return False
    raise FirewallError(f"cannot delete nftables table {family} {table}", details=proc.stderr.strip())


def list_table(family: str, table: str) -> list[dict] | None:
    """The table's objects (chains, rules) as nft JSON, or None when it does not exist."""
    proc = _run(["-j", "list", "table", family, table])
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout).get("nftables", [])


def table_exists(family: str, table: str) -> bool:
    return list_table(family, table) is not None
