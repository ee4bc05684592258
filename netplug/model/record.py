"""The state record of one attachment (container ID, interface), as the agent persists it.

A record is written before the first change an ADD makes (status "adding") and rewritten
as the ADD progresses, so a DEL after a crash or a restart finds everything ADD may have
made: the IPAM delegate to release and the whole NetSpec to tear down.

May import: pydantic, netplug.model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from netplug.model.netspec import NetSpec

RECORD_VERSION = 1


class IpamDelegate(BaseModel):
    """How to call the IPAM plugin again for DEL/GC: its config and environment."""

    model_config = ConfigDict(extra="forbid")
    type: str
    config: dict
    cni_path: list[str]
    cni_args: str = ""


class AttachmentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = RECORD_VERSION
    container_id: str
    ifname: str
    network: str
    netns: str
    binding: str
    cni_version: str
    status: Literal["adding", "added"] = "adding"
    created: float
    ipam: IpamDelegate | None = None
    netspec: NetSpec | None = None
    #: the final ADD result in canonical (1.1.0) form
    result: dict | None = None
    extra: dict = Field(default_factory=dict)
