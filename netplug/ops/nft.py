"""nftables through libnftables (the library behind the `nft` program), JSON in and out.

One call is one transaction: a JSON document is applied all or nothing, exactly as
`nft -j -f -` would, but in-process, so it costs about a millisecond instead of a program
start, and it acts in the calling thread's netns (the library opens its netlink socket
there). libnftables comes with Debian's nftables package (libnftables1).

A context is freed on a thread of its own, not by the caller: closing its netlink socket
makes the kernel finish every pending table destruction first (an RCU grace period, ~10 ms
here, after any table delete anywhere on the node), and nothing the caller does depends on
that.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import queue
import threading

from netplug.errors import FirewallError
from netplug.ops import netns

_NFT_CTX_DEFAULT = 0
_NFT_CTX_OUTPUT_JSON = 1 << 4
_lib: ctypes.CDLL | None = None
_to_free: queue.SimpleQueue[int] = queue.SimpleQueue()
_freer: threading.Thread | None = None
_freer_lock = threading.Lock()


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            raise FirewallError("libnftables is not installed (Debian package nftables)") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        _lib = lib
    return _lib


def unavailable() -> str | None:
    """Why netplug cannot load rulesets here (libnftables missing), or None."""
    try:
        _library()
    except FirewallError as exc:
        return exc.msg
    return None


def _free_contexts() -> None:
    lib = _library()
    while True:
        lib.nft_ctx_free(_to_free.get())


def _free_later(ctx: int) -> None:
    global _freer
    with _freer_lock:
        if _freer is None:
            # a thread starts in the netns of the thread that starts it: in the node's, it never
            # keeps a pod's netns alive
            with netns.entered(netns.NODE):
                _freer = threading.Thread(target=_free_contexts, name="nft-ctx-free", daemon=True)
                _freer.start()
    _to_free.put(ctx)


def _run(command: str) -> tuple[bool, str, str]:
    """(ok, output, error text) of one command or JSON document, in the current netns."""
    lib = _library()
    ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
    if not ctx:
        raise FirewallError("libnftables could not create a context")
    try:
        lib.nft_ctx_output_set_flags(ctx, _NFT_CTX_OUTPUT_JSON)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, command.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
        return rc == 0, out, err
    finally:
        _free_later(ctx)


def load(document: dict) -> None:
    """Apply a JSON ruleset document in one transaction (all or nothing)."""
    ok, _, err = _run(json.dumps(document))
    if not ok:
        raise FirewallError("nftables rejected the ruleset", details=err.strip())


def delete_table(family: str, table: str) -> bool:
    """Delete a table; False when it did not exist."""
    ok, _, err = _run(json.dumps({"nftables": [{"delete": {"table": {"family": family, "name": table}}}]}))
    if ok:
        return True
    if "No such file or directory" in err:
        return False
    raise FirewallError(f"cannot delete nftables table {family} {table}", details=err.strip())


def list_table(family: str, table: str) -> list[dict] | None:
    """The table's objects (chains, rules) as nft JSON, or None when it does not exist."""
    ok, out, _ = _run(json.dumps({"nftables": [{"list": {"table": {"family": family, "name": table}}}]}))
    if not ok:
        return None
    return [o for o in json.loads(out).get("nftables", []) if "metainfo" not in o]


def table_exists(family: str, table: str) -> bool:
    return list_table(family, table) is not None


def list_ruleset() -> list[dict]:
    """Every table, chain and rule of the calling thread's netns, as nft JSON objects."""
    ok, out, err = _run(json.dumps({"nftables": [{"list": {"ruleset": None}}]}))
    if not ok:
        raise FirewallError("cannot list the nftables ruleset", details=err.strip())
    return [o for o in json.loads(out).get("nftables", []) if "metainfo" not in o]
