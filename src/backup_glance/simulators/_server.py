"""Run an ASGI app on loopback over real HTTPS (self-signed leaf from a throwaway CA) in a background thread."""

from __future__ import annotations

import errno
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
import uvicorn

from ..httpserver import QuietServer
from ..sources._http import certificate_fingerprint


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class SimulatorServer:
    """`with SimulatorServer(app) as server: server.url, server.fingerprint, server.ca_file`."""

    def __init__(self, app: Any, *, tls: bool = True, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.app = app
        self.tls = tls
        self.host = host
        self._port_asked = port is not None
        self.port = port or free_port(host)
        self._dir = tempfile.TemporaryDirectory(prefix="backup-glance-sim-")
        self.ca_file: str | None = None
        self.fingerprint: str | None = None
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        options: dict[str, Any] = {}
        if self.tls:
            ca = trustme.CA()
            leaf = ca.issue_cert(self.host, "localhost")
            folder = Path(self._dir.name)
            cert_path, key_path, ca_path = folder / "leaf.pem", folder / "leaf.key", folder / "ca.pem"
            leaf.private_key_pem.write_to_path(str(key_path))
            cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
            ca.cert_pem.write_to_path(str(ca_path))
            self.ca_file = str(ca_path)
            self.fingerprint = _leaf_fingerprint(leaf.cert_chain_pems[0].bytes())
            options = {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path)}
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,  # the process's own logging setup applies (the demo runs these inside `serve`)
            log_level=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,  # clients may hold keep-alive connections; don't wait on them
            **options,
        )
        self._server = QuietServer(config)
        sockets = [self._listening_socket()]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": sockets}, name=f"sim-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"simulator on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def _listening_socket(self) -> socket.socket:
        """The server's socket, bound now. The port picked at `__init__` may have been taken since (a busy machine
        hands the same range out as the local ports of its own connections): one not asked for is picked anew."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(10):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or self._port_asked:
                    raise
                self.port = free_port(self.host)
                continue
            return sock
        raise RuntimeError(f"no free port for a simulator on {self.host}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._dir.cleanup()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _leaf_fingerprint(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pem)
    return certificate_fingerprint(cert.public_bytes(Encoding.DER))
