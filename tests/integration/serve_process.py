"""A real `backup-glance serve` process for tests: started, waited on until it announces its URL, then signalled."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

ANNOUNCE = re.compile(r"serving on (http://[^\s\"]+)")


class ServeProcess:
    """`with ServeProcess(["--config", path], env=...) as serve: httpx.get(serve.url + "/healthz")`."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        command: Sequence[str] | None = None,
        startup_s: float = 60.0,
    ) -> None:
        base = list(command) if command is not None else [sys.executable, "-m", "backup_glance"]
        self.argv = [*base, "serve", "--port", "0", *args]
        self.env = {"PATH": "/usr/bin:/bin", "TZ": "UTC", **(env or {})}
        self.cwd = cwd
        self.startup_s = startup_s
        self.lines: list[str] = []
        self.url = ""
        self._announced = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._announced.wait(self.startup_s):
            self.kill()
            raise AssertionError("serve did not announce its URL:\n" + self.output)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            # The graceful path first: it removes the demo's temporary folder, which SIGKILL would leave behind.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = ANNOUNCE.search(line)
            if match and not self._announced.is_set():
                self.url = match.group(1)
                self._announced.set()
        self._announced.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, float]:
        """Send `signum`; return the exit code and the seconds it took to exit."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        time.sleep(0.05)  # let the reader thread take the last lines
        return code, time.monotonic() - began

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
