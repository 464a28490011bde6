"""Worker side: send the module's log records to the host as LOG frames, levels intact."""

from __future__ import annotations

import logging
import sys

from plexisandbox._protocol import Op

from .channel import FrameWriter

__all__ = ["install_log_relay", "line_buffered_output"]

_MAX_RECORD = 8 * 1024


class _RelayHandler(logging.Handler):
    def __init__(self, writer: FrameWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._writer.send([Op.LOG, record.levelno, record.name[:200], text[:_MAX_RECORD]])
        except Exception:
            self.handleError(record)


def install_log_relay(writer: FrameWriter, level: int) -> None:
    """Route the root logger to the host; make print() reach it line by line."""
    root = logging.getLogger()
    root.handlers[:] = [_RelayHandler(writer)]
    root.setLevel(level)
    logging.lastResort = None
    line_buffered_output()


def line_buffered_output() -> None:
    """stdout/stderr are pipes the host drains line by line: don't hold lines in a buffer.
    (A zygote does this once, ahead, for all its workers.)"""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "line_buffering", False) and stream.errors == "backslashreplace":
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True, errors="backslashreplace")
