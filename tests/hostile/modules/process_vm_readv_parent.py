"""Hostile module: Read the supervisor's memory with process_vm_readv."""

import ctypes
import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class ProcessVmReadvParent(Hostile):
    """Read the supervisor's memory with process_vm_readv."""

    def attempt(self):
        buf = ctypes.create_string_buffer(64)
        local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
        remote = (ctypes.c_void_p * 2)(0x400000, 64)
        return syscall_outcome(310, os.getppid(), ctypes.addressof(local), 1,
                               ctypes.addressof(remote), 1, 0)
