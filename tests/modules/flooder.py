"""Hostile module: floods the host with work that costs it far more than it costs us."""

import os
import struct
import threading

import msgpack

from plexisandbox.interfaces import BaseModule, ModulePermissions


class Flooder(BaseModule):
    def __init__(self):
        super().__init__("flooder", "1.0.0")

    async def initialize(self):
        return True

    def get_metadata(self):
        return {"description": "flood", "author": "review"}

    def get_required_permissions(self):
        return ModulePermissions()

    async def newlines(self):
        chunk = b"\n" * 65536

        def run():
            while True:
                os.write(1, chunk)

        threading.Thread(target=run, daemon=True).start()
        return True

    async def frames(self, rows: int = 5500):
        # valid EMIT frames of tiny strings (rows of 1000: 5500 make ~16 MiB, ~1 s to decode),
        # for an event nobody subscribes to
        row = ["ab"] * 1000
        body = msgpack.packb([39, "nobody.listens", [row] * rows])
        frame = struct.pack(">I", len(body)) + body
        write = BaseModule._runtime.writer._write  # the worker's own lock: frames stay whole

        def run():
            while True:
                write(frame)

        threading.Thread(target=run, daemon=True).start()
        return True
