"""A ThreadingHTTPServer for the test fakes whose request threads stop() can join."""

from __future__ import annotations

import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TrackingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose handler threads are tracked so stop() can join them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: Any, thread_name: str
    ) -> None:
        self.owner = owner
        self.thread_name = thread_name
        self._active: dict[threading.Thread, socket.socket] = {}
        self._active_lock = threading.Lock()
        super().__init__(addr, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_one, args=(request, client_address), daemon=True, name=self.thread_name
        )
        with self._active_lock:
            self._active[thread] = request
        thread.start()

    def _run_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # client went away or stop() shut the socket down
        finally:
            self.shutdown_request(request)
            with self._active_lock:
                self._active.pop(threading.current_thread(), None)

    def close_active(self, timeout: float = 5.0) -> None:
        """Shut down in-flight request sockets and join their threads."""
        with self._active_lock:
            items = list(self._active.items())
        for _thread, sock in items:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread, _sock in items:
            thread.join(timeout)
