"""A light HTTP/1.1 load generator: prebuilt requests, keep-alive connections, one asyncio loop.

The client shares the machine with the server it measures, so it must spend as little CPU per
request as it can: each request is built to bytes before the clock starts, and each connection
sends its next request only when the previous response is complete (one in flight, no
pipelining, as a push delivery does). Responses are read only as far as the status line and
`Content-Length`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Mapping, Sequence


def request_bytes(host: str, port: int, headers: Mapping[str, str], body: bytes, path: str = "/") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    def __init__(self, requests: Sequence[bytes], done: asyncio.Future, statuses: dict[int, int]) -> None:
        self._requests = requests
        self._next = 0
        self._done = done
        self._statuses = statuses
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._send()

    def _send(self) -> None:
        if self._next == len(self._requests):
            self._transport.close()
            if not self._done.done():
                self._done.set_result(None)
            return
        self._transport.write(self._requests[self._next])
        self._next += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(self._buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        self._statuses[status] = self._statuses.get(status, 0) + 1
        self._buffer = self._buffer[end + 4 + length:]
        self._send()

    def connection_lost(self, exc) -> None:
        if not self._done.done():
            if self._next < len(self._requests) or self._buffer:
                self._done.set_exception(ConnectionError(f"connection closed early: {exc}"))
            else:
                self._done.set_result(None)


async def _run(host: str, port: int, chunks: Sequence[Sequence[bytes]], statuses: dict[int, int]) -> None:
    loop = asyncio.get_running_loop()
    futures = []
    for chunk in chunks:
        done = loop.create_future()
        await loop.create_connection(lambda c=chunk, d=done: _Connection(c, d, statuses), host, port)
        futures.append(done)
    await asyncio.gather(*futures)


def send_all(host: str, port: int, requests: Sequence[bytes], connections: int) -> tuple[float, float, dict[int, int]]:
    """POSTs every request over `connections` connections; (wall seconds, client CPU seconds, statuses)."""
    chunks = [requests[k::connections] for k in range(connections)]
    statuses: dict[int, int] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(_run(host, port, chunks, statuses))
    return time.perf_counter() - wall, time.process_time() - cpu, statuses
