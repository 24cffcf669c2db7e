"""A TCP proxy between a client and the Firestore emulator that can stall traffic on demand.

It forwards bytes both ways. `stall_replies()` holds what the emulator sends back on every
connection open at that moment (the request has reached the emulator: the commit lands, its
reply does not come); `stall_requests()` holds what the client sends on those connections (the
commit sits in the connection and reaches the emulator only when released). Connections opened
later pass freely, as a fresh client's would. Everything held is delivered, in order, when the
stall ends; nothing is dropped.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Optional

from tests.support.emulators import free_port

UP, DOWN = "up", "down"


class StallProxy:
    def __init__(self, target_host: str) -> None:
        host, port = target_host.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self._listener: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._connections: list[int] = []
        # (direction, connection number) -> monotonic time until which its bytes are held
        self._held: dict[tuple[str, int], float] = {}
        self._next = 0
        self._stop = threading.Event()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "StallProxy":
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener:
            self._listener.close()

    def stall_replies(self, seconds: float) -> None:
        self._stall(DOWN, seconds)

    def stall_requests(self, seconds: float) -> None:
        self._stall(UP, seconds)

    def _stall(self, direction: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        with self._lock:
            for number in self._connections:
                self._held[(direction, number)] = until

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                number = self._next
                self._next += 1
                self._connections.append(number)
            threading.Thread(target=self._pump, args=(client, upstream, UP, number), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, DOWN, number), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str, number: int) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while True:
                    with self._lock:
                        until = self._held.get((direction, number), 0.0)
                    if time.monotonic() >= until:
                        break
                    time.sleep(0.01)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
