"""cloud-init NoCloud seed images: an ISO 9660 volume labelled "cidata" (pycdlib, pure Python).

`write_seed` is the one way a VM's `cloudInitNoCloud` volume becomes its seed disk: `netplug
up` writes it beside the VM's record, the launcher in a launcher pod into its state dir.
"""

from __future__ import annotations

import io
import os

import pycdlib

from netplug.guest import nocloud_files
from netplug.model.vm import VirtualMachineInstance


def write_nocloud_iso(path: str, files: dict[str, bytes]) -> str:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for n, (name, data) in enumerate(sorted(files.items())):
        iso.add_fp(io.BytesIO(data), len(data), f"/FILE{n}.;1", rr_name=name, joliet_path=f"/{name}")
    iso.write(path)
    iso.close()
    return path


def write_seed(vmi: VirtualMachineInstance, volume: str, directory: str) -> str:
    """`directory/<volume>.iso`: the NoCloud seed of the VMI's cloudInitNoCloud volume `volume`."""
    source = next(v for v in vmi.spec.volumes if v.get("name") == volume)
    return write_nocloud_iso(os.path.join(directory, f"{volume}.iso"), nocloud_files(vmi, source))
