"""Hostile module: reboot, clock_settime, init_module, swapoff, sethostname."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class KernelAdmin(Hostile):
    """reboot, clock_settime, init_module, swapoff, sethostname."""

    def attempt(self):
        ts = ctypes.create_string_buffer(16)
        return {"reboot": syscall_outcome(169, 0xfee1dead, 672274793, 0x4321FEDC, 0),
                "clock_settime": syscall_outcome(227, 0, ctypes.addressof(ts)),
                "init_module": syscall_outcome(175, 0, 0, 0),
                "sethostname": syscall_outcome(170, ctypes.addressof(ts), 4),
                "perf_event_open": syscall_outcome(298, ctypes.addressof(ts), 0, -1, -1, 0),
                "userfaultfd": syscall_outcome(323, 0)}
