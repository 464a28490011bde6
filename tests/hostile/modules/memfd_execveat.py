"""Hostile module: memfd_create + execveat: run a binary no path rule ever sees."""

import ctypes

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class MemfdExecveat(Hostile):
    """memfd_create + execveat: run a binary no path rule ever sees."""

    def attempt(self):
        name = ctypes.create_string_buffer(b"payload")
        steps = {"memfd": syscall_outcome(319, ctypes.addressof(name), 0)}
        empty = ctypes.create_string_buffer(b"")
        argv = (ctypes.c_void_p * 1)(None)
        # execveat(0, "", argv, envp, AT_EMPTY_PATH) on stdin: refused before any fd is looked at
        steps["execveat"] = syscall_outcome(322, 0, ctypes.addressof(empty), ctypes.addressof(argv),
                                            ctypes.addressof(argv), 0x1000)
        return steps
