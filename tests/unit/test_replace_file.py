"""netplug.ops.files.replace_file: how every file a reader must find whole is written (state
records, DHCP config, CNI cache, device-info, launcher status, standalone records, the shim)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from netplug.ops.files import replace_file


def _temporary(path) -> str:
    return f"{path}.tmp.{os.getpid()}.{threading.get_native_id()}"


def test_the_file_is_replaced_whole_with_exactly_its_mode(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    old_umask = os.umask(0o077)
    try:
        replace_file(str(path), "new", 0o644)
        replace_file(str(tmp_path / "loader"), b"#!/bin/sh\n", 0o755)
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readers the caller named, whatever the umask
    assert stat.S_IMODE((tmp_path / "loader").stat().st_mode) == 0o755
    assert sorted(os.listdir(tmp_path)) == ["loader", "record.json"]


def test_a_temporary_file_a_killed_writer_left_does_not_stop_the_next_write(tmp_path):
    path = tmp_path / "net1.json"
    open(_temporary(path), "w").write('{"half')
    replace_file(str(path), "{}")
    assert path.read_text() == "{}" and os.listdir(tmp_path) == ["net1.json"]


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, _temporary(tmp_path / "info.json"))
    replace_file(str(tmp_path / "info.json"), "{}")
    assert victim.read_text() == "untouched"
    assert (tmp_path / "info.json").read_text() == "{}" and not (tmp_path / "info.json").is_symlink()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "dir"
    path.mkdir()  # a directory at the target: the rename fails
    with pytest.raises(OSError):
        replace_file(str(path), "data")
    assert path.is_dir() and os.listdir(tmp_path) == ["dir"]
