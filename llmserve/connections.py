"""Many concurrent requests to one server over httpx: one single-connection client per request
in flight, lent from a free list, instead of one client whose pool holds every connection.

httpcore's pool matches every queued request against every connection on each change, so its
cost per request grows with the connections it holds. Measured on the 2-core AMD EPYC
(avx512f, avx512_bf16), 2026-12-05: 4096 POSTs at C=1024 to two local uvicorn servers that
answer after 0.2 s, one shared `httpx.AsyncClient(limits=Limits(max_connections=None))` per
server made 57, 136 and 169 requests/s (6-17 ms of client CPU per request); single-connection
clients lent per request, 928 and 1032 requests/s once made (0.9-1.0 ms). On an H200 the
shared pool held `ENGINE_REPLICAS=2`'s concurrent /predict row at 4059 output tok/s, against
14077 for one engine without it (docs/replicas-and-gpus.md).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds one per client otherwise (tens of ms
    each, which at C=1024 clients is most of a run's first seconds)."""
    return ssl.create_default_context()


def single_connection_client(
    base_url: str, timeout: httpx.Timeout | float | None, keepalive_expiry: float
) -> httpx.AsyncClient:
    """An httpx client of one pooled connection (see the module docstring)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1,
                          keepalive_expiry=keepalive_expiry)  # fmt: skip
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits,
                             verify=tls_context())  # fmt: skip


class ClientPool:
    """Single-connection clients of one server, one lent per request in flight
    (`async with pool.client() as client`). A client whose request raised is closed, not
    lent again: its connection may be half used."""

    def __init__(self, base_url: str, timeout: httpx.Timeout | float | None = None,
                 keepalive_expiry: float = 5.0) -> None:  # fmt: skip
        self.base_url = base_url
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        self._free: list[httpx.AsyncClient] = []
        self.made = 0  # clients made so far: the most requests that were in flight at once

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._free:
            client = self._free.pop()
        else:
            client = single_connection_client(self.base_url, self.timeout, self.keepalive_expiry)
            self.made += 1
        try:
            yield client
        except BaseException:
            await client.aclose()
            raise
        self._free.append(client)

    async def aclose(self) -> None:
        free, self._free = self._free, []
        for client in free:
            await client.aclose()
