"""Hostile module: A 32-bit syscall through int 0x80: a second syscall table."""

import ctypes
import mmap

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class Int80I386(Hostile):
    """A 32-bit syscall through int 0x80: a second syscall table."""

    def attempt(self):
        code = bytes([0xB8, 0x14, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (getpid); int 0x80; ret
        page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        return ctypes.CFUNCTYPE(ctypes.c_int)(address)()
