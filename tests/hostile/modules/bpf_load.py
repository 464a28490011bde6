"""Hostile module: bpf(BPF_PROG_LOAD): load code into the kernel."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class BpfLoad(Hostile):
    """bpf(BPF_PROG_LOAD): load code into the kernel."""

    def attempt(self):
        attr = ctypes.create_string_buffer(128)
        return syscall_outcome(321, 5, ctypes.addressof(attr), 128)
