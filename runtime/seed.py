"""cloud-init NoCloud seed images: an ISO 9660 volume labelled "cidata" (pycdlib, pure Python)."""

from __future__ import annotations

import io

import pycdlib


def write_nocloud_iso(path: str, files: dict[str, bytes]) -> str:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for n, (name, data) in enumerate(sorted(files.items())):
        iso.add_fp(io.BytesIO(data), len(data), f"/FILE{n}.;1", rr_name=name, joliet_path=f"/{name}")
    iso.write(path)
    iso.close()
    return path
