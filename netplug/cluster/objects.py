"""What every controller decision shares: owner references, finalizers, conditions, times.

May import: the standard library only.
"""

from __future__ import annotations

import datetime as dt
import hashlib

#: the controller's finalizer on VMs and VMIs: a VM is removed only after its VMI, a VMI only
#: after its launcher pod, so deletion is orderly and nothing is orphaned even without the
#: garbage collector
FINALIZER = "netplug.io/controller"
KUBEVIRT = "kubevirt.io/v1"
#: label on every launcher pod the controller makes (what its pod watch selects)
MANAGED_BY = ("app.kubernetes.io/managed-by", "netplug-controller")
FINAL_PHASES = ("Succeeded", "Failed")


def meta(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def key(obj: dict) -> str:
    return f"{meta(obj).get('namespace', 'default')}/{meta(obj).get('name', '')}"


def timestamp(now: dt.datetime) -> str:
    """RFC 3339 in UTC, to the second (metav1.Time)."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(now: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds (metav1.MicroTime, as Leases and Events carry)."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def owner_reference(owner: dict) -> dict:
    """A controller reference to `owner`: the garbage collector removes the child with it, and
    blockOwnerDeletion keeps a foreground deletion of the owner waiting for the child."""
    return {"apiVersion": owner.get("apiVersion", KUBEVIRT), "kind": owner["kind"], "name": meta(owner)["name"],
            "uid": meta(owner).get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def controller_uid(obj: dict | None) -> str | None:
    """The uid of the object's controller (the owner reference with controller: true)."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def owned_by(obj: dict | None, owner: dict | None) -> bool:
    uid = meta(owner).get("uid")
    return bool(uid) and controller_uid(obj) == uid


def deleting(obj: dict | None) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def has_finalizer(obj: dict | None) -> bool:
    return FINALIZER in (meta(obj).get("finalizers") or [])


def finalizers_with(obj: dict, present: bool) -> list[str]:
    """The object's finalizer list with the controller's finalizer added or removed."""
    rest = [f for f in meta(obj).get("finalizers") or [] if f != FINALIZER]
    return rest + [FINALIZER] if present else rest


def short_hash(text: str, length: int = 5) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def condition(obj: dict | None, kind: str) -> dict | None:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def condition_true(obj: dict | None, kind: str) -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == "True"


def set_condition(conditions: list[dict], kind: str, status: str, now: dt.datetime, reason: str = "",
                  message: str = "", previous: list[dict] | None = None) -> list[dict]:
    """`conditions` with the condition `kind` set; its lastTransitionTime stays as it was in
    `previous` while the status does not change (so an unchanged status writes nothing)."""
    old = next((c for c in previous or [] if c.get("type") == kind), None)
    entry = {"type": kind, "status": status,
             "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status
             and old.get("lastTransitionTime") else timestamp(now)}
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return [c for c in conditions if c.get("type") != kind] + [entry]
