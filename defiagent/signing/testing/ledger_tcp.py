"""An emulated Ledger served over TCP, in the APDU framing Speculos and ledgerblue share.

ledgerblue's own TCP transport (selected with LEDGER_PROXY_ADDRESS / LEDGER_PROXY_PORT, the
way developers reach Speculos) sends `len(apdu):u32be || apdu` and reads
`len(data):u32be || data || sw:u16be`. Serving EmulatedLedger this way lets the agent's
production path (ledgereth -> ledgerblue -> transport) run unchanged against it.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading

from defiagent.signing.testing.ledger_emulator import EmulatedLedger


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client closed the connection")
        data += chunk
    return data


class LedgerTcpEmulator:
    def __init__(self, device: EmulatedLedger | None = None, host: str = "127.0.0.1") -> None:
        self.device = device or EmulatedLedger()
        self.host = host
        self.port: int | None = None
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one device: APDUs are handled one at a time

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        emulator = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                try:
                    while True:
                        (size,) = struct.unpack(">I", _read_exact(sock, 4))
                        apdu = _read_exact(sock, size)
                        with emulator._lock:
                            data, sw = emulator.device.process(apdu)
                        sock.sendall(
                            struct.pack(">I", len(data)) + bytes(data) + struct.pack(">H", sw)
                        )
                except (ConnectionError, OSError):
                    return

        return Handler

    def start(self) -> LedgerTcpEmulator:
        self._server = socketserver.ThreadingTCPServer((self.host, 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ledger-emulator", daemon=True
        )
        self._thread.start()
        return self

    def env(self) -> dict[str, str]:
        """What points ledgerblue's transport at this emulator (for a child process)."""
        return {"LEDGER_PROXY_ADDRESS": self.host, "LEDGER_PROXY_PORT": str(self.port)}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LedgerTcpEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
