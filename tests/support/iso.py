"""Reading an ISO 9660 image back (pycdlib): the NoCloud seeds netplug writes."""

from __future__ import annotations

import io

import pycdlib


def iso_files(path: str, names: list[str]) -> tuple[str, dict[str, bytes]]:
    """(the volume label, {name: data}) of the Rock Ridge files `names` in the image."""
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        files = {}
        for name in names:
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue()
        return iso.pvd.volume_identifier.decode().strip(), files
    finally:
        iso.close()
