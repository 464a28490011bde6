"""Shared base of the hostile modules (runs inside a confined worker): one escape attempt
each, reported as plain data so the test can assert exactly how it failed."""

import ctypes
import errno
import os

from plexisandbox.interfaces import BaseModule, ModulePermissions

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def errname(code):
    return errno.errorcode.get(code, str(code))


def raw_syscall(nr, *args):
    """(result, errno name or None) of a raw syscall with integer arguments."""
    ctypes.set_errno(0)
    res = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return res, (errname(ctypes.get_errno()) if res == -1 else None)


def syscall_outcome(nr, *args):
    res, err = raw_syscall(nr, *args)
    if res == -1:
        return {"ok": False, "errno": err}
    return {"ok": True, "value": res}


def outcome(fn):
    """Run one attempt: {"ok": False, "errno": "EPERM"} when it failed with an OSError."""
    try:
        value = fn()
    except OSError as exc:
        return {"ok": False, "errno": errname(exc.errno) if exc.errno else None,
                "error": type(exc).__name__, "message": str(exc)[:300]}
    except BaseException as exc:  # noqa: BLE001 - the test wants to see what happened
        return {"ok": False, "errno": None, "error": type(exc).__name__, "message": str(exc)[:300]}
    return {"ok": True, "value": value}


def data_dir():
    return os.environ.get("TMPDIR", "/nonexistent")


class Hostile(BaseModule):
    """Declares nothing unless a subclass sets PERMISSIONS."""

    PERMISSIONS = {}

    def __init__(self, name="hostile", version="1.0.0"):
        super().__init__(name, version)

    async def initialize(self):
        return True

    def get_metadata(self):
        return {"name": self.name, "version": self.version, "description": "escape attempt",
                "author": "plexisandbox tests"}

    def get_required_permissions(self):
        return ModulePermissions(**self.PERMISSIONS)
