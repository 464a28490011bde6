"""Host side: the baselines `plexisandbox bench` sets the sandbox against, in the same run.

* raw pipe — the floor for a Python peer: a child interpreter echoing length-prefixed msgpack
  frames over blocking pipes, the parent blocking in `os.read`/`os.write`. No event loop, no
  checks, no confinement.
* `multiprocessing.Pipe` — pickle over a socketpair to a spawned child.
* execnet — a popen gateway and a channel (when execnet is installed; it is in the `bench`
  extra): the closest RPC peer of the ones the issue lists.
* in-process — `await module.call_method("echo", value=i)` on the bench echo module in the
  host. This is our own trusted module; a user's module is never run in the host (see
  `_bench_module`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import msgpack

from ._bench_common import EXTRA_HINT, place, time_calls

__all__ = ["MpPipe", "RawPipe", "execnet_rtt", "in_process_rtt", "peers"]

# Reads whatever arrived, answers every complete frame in one write: it serves one-at-a-time
# round trips and pipelined bursts alike. Reads ask for one pipe buffer (64 KiB): a larger
# os.read() allocates through mmap, three more syscalls per read, and the floor would be
# slower than it has to be.
_RAW_CHILD = r"""
import os, sys, struct, msgpack
r, w = int(sys.argv[1]), int(sys.argv[2])
H = struct.Struct(">I")
buf = b""
while True:
    data = os.read(r, 65536)
    if not data:
        break
    buf += data
    out = []
    while len(buf) >= 4:
        (n,) = H.unpack_from(buf)
        if len(buf) < 4 + n:
            break
        msg = msgpack.unpackb(buf[4:4 + n])
        buf = buf[4 + n:]
        body = msgpack.packb([35, msg[1], msg[3].get("value")])
        out.append(H.pack(len(body)) + body)
    if out:
        os.write(w, b"".join(out))
"""


def _frame(request_id: int) -> bytes:
    body: bytes = msgpack.packb([3, request_id, "echo", {"value": request_id}])
    return len(body).to_bytes(4, "big") + body


class RawPipe:
    """The floor: a child Python process echoing msgpack frames over blocking pipes."""

    def __init__(self) -> None:
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RAW_CHILD, str(to_r), str(from_w)], pass_fds=(to_r, from_w)
        )
        os.close(to_r)
        os.close(from_w)

    def roundtrip(self, request_id: int) -> Any:
        """One request, one answer; returns the answer `[35, request_id, value]`."""
        os.write(self.to_w, _frame(request_id))
        data = os.read(self.from_r, 65536)
        need = int.from_bytes(data[:4], "big") + 4
        while len(data) < need:
            data += os.read(self.from_r, 65536)
        return msgpack.unpackb(data[4:need])

    def pipelined(self, total: int, window: int) -> float:
        """Calls per second with `window` requests written at once, answers read in bulk."""
        started = time.perf_counter()
        sent = 0
        while sent < total:
            batch = min(window, total - sent)
            os.write(self.to_w, b"".join(_frame(sent + i) for i in range(batch)))
            got = 0
            buf = b""
            while got < batch:
                buf += os.read(self.from_r, 65536)
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                    n = int.from_bytes(buf[:4], "big")
                    msgpack.unpackb(buf[4 : 4 + n])
                    buf = buf[4 + n :]
                    got += 1
            sent += batch
        return total / (time.perf_counter() - started)

    def close(self) -> None:
        """End the child (EOF on its stdin pipe) and reap it."""
        os.close(self.to_w)
        self.proc.wait()
        os.close(self.from_r)


def _mp_child(conn: Any) -> None:
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        conn.send(msg)


class MpPipe:
    """`multiprocessing.Pipe` (pickle) to a spawned child that echoes."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_mp_child, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def roundtrip(self, i: int) -> None:
        self.parent.send(("echo", {"value": i}))
        self.parent.recv()

    def close(self) -> None:
        self.parent.close()
        self.proc.join(5)


@contextlib.contextmanager
def peers(*, cpu: int | None = None, warmup: int = 200) -> Iterator[tuple[RawPipe, MpPipe]]:
    """A raw-pipe and an mp.Pipe echo child, warmed up — with every thread on `cpu` if given —
    for round trips taken interleaved with the sandbox's (`_bench_suite.call_path`)."""
    raw = RawPipe()
    try:
        mp = MpPipe()
        try:
            if cpu is not None:
                assert mp.proc.pid is not None
                place(raw.proc.pid, cpu)
                place(mp.proc.pid, cpu)
            for peer in (raw.roundtrip, mp.roundtrip):
                time_calls(peer, warmup)
            yield raw, mp
        finally:
            mp.close()
    finally:
        raw.close()


_EXECNET_ECHO = """
while 1:
    item = channel.receive()
    if item is None:
        break
    channel.send(item)
"""


def execnet_rtt(n: int, *, warmup: int = 200) -> list[float] | str:
    """Round-trip samples (seconds) through an execnet popen gateway and channel, or why
    there are none (execnet is an optional extra)."""
    try:
        import execnet
    except ImportError:
        return f"not installed ({EXTRA_HINT})"
    gateway = execnet.makegateway("popen")
    try:
        channel = gateway.remote_exec(_EXECNET_ECHO)

        def roundtrip(i: int) -> None:
            channel.send(("echo", {"value": i}))
            channel.receive()

        time_calls(roundtrip, warmup)
        samples = time_calls(roundtrip, n)
        channel.send(None)
        channel.waitclose(5)
        return samples
    finally:
        gateway.exit()


async def in_process_rtt(n: int, *, warmup: int = 200) -> list[float]:
    """Round-trip samples (seconds) of `call_method("echo")` on the bench echo module, in the
    host: the module's own cost with no boundary at all. (Our module, never a user's.)"""
    from ._bench_modules import BenchEcho

    module = BenchEcho()
    clock = time.perf_counter
    samples = []
    for i in range(warmup + n):
        started = clock()
        await module.call_method("echo", value=i)
        if i >= warmup:
            samples.append(clock() - started)
    return samples
