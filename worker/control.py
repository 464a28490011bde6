"""Worker side: the control thread — liveness pings and stack dumps, independent of the loop.

Module code can keep the event loop busy (a CPU-bound handler, a blocking call); the host
still needs to tell "busy" from "dead" and, before killing a hung worker, to see where it
hangs. This thread reads the control pipe with a blocking read (the GIL is released there and
handed over at least every switch interval, so it answers while a pure-Python loop spins).
"""

from __future__ import annotations

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


def start_control_thread(fd_ctl: int, writer: FrameWriter) -> threading.Thread:
    """Start the daemon thread that serves the control pipe."""
    thread = threading.Thread(
        target=_serve_control,
        args=(BlockingReader(fd_ctl), writer),
        name="plexisandbox-control",
        daemon=True,
    )
    thread.start()
    return thread
