"""A benign module that declares network access: resolve a name, talk TCP to a server."""

import asyncio
import os
import socket
import ssl

from _hostile import Hostile, outcome


class NetClient(Hostile):
    """Resolves a name and reads one line from a TCP server."""

    PERMISSIONS = {"network_access": True}

    async def fetch(self, host="localhost", port=0):
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        address = infos[0][4][0]
        reader, writer = await asyncio.open_connection(address, port)
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return {"address": address, "line": line.decode()}

    def raw_socket(self):
        return outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))

    def tls_trust_store(self):
        """A fresh TLS context after lockdown still finds the system's CA certificates."""
        return ssl.create_default_context().cert_store_stats()["x509_ca"]

    def tls_private_keys(self):
        """The host's TLS private keys sit beside the trust store."""
        return outcome(lambda: os.listdir("/etc/ssl/private"))
