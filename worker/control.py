"""Worker side: the control thread — liveness pings and stack dumps, independent of the loop.

Module code can keep the event loop busy (a CPU-bound handler, a blocking call); the host
still needs to tell "busy" from "dead" and, before killing a hung worker, to see where it
hangs. This thread reads the control pipe with a blocking read (the GIL is released there and
handed over at least every switch interval, so it answers while a pure-Python loop spins).
"""

from __future__ import annotations

import _thread
import sys
import threading
import traceback

from plexisandbox._protocol import Op

from .channel import BlockingReader, FrameWriter

__all__ = ["format_stacks", "start_control_thread"]


def format_stacks() -> str:
    """Every thread's current Python stack, innermost call last."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue  # this control thread itself is of no interest
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"Thread {names.get(ident, ident)}:\n{stack}")
    return "\n".join(parts)


def _serve_control(reader: BlockingReader, writer: FrameWriter) -> None:
    while True:
        try:
            message = reader.next()
        except (EOFError, OSError):
            return
        if message[0] == Op.CTL_PING:
            writer.send([Op.PONG, message[1]])
        elif message[0] == Op.STACKS:
            writer.send([Op.STACKS_DUMP, message[1], format_stacks()[-64 * 1024 :]])


def start_control_thread(fd_ctl: int, writer: FrameWriter) -> int:
    """Start the thread that serves the control pipe; return its ident.

    A bare `_thread` thread: `threading.Thread.start()` waits until the new thread has run
    (a cross-CPU wake-up and a GIL hand-over, ~0.4 ms of a worker's start here), and this
    thread needs none of what `threading` tracks. It is a daemon by nature (the worker ends
    with `os._exit`), absent from `threading.enumerate()`, and skips itself in stack dumps.
    """
    return _thread.start_new_thread(_serve_control, (BlockingReader(fd_ctl), writer))
