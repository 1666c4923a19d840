"""Fixtures: a real ternd on an ephemeral port, the tern CLI, and a check
that no test leaves a task pending or an error logged by asyncio.

TERND and TERN name the binaries (CMake passes them); by default they are
looked up in build/bin of the source tree.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
ROOT = HERE.parents[2]
SANITIZER = re.compile(r"ERROR: (Leak|Address)Sanitizer|runtime error:")


def _binary(var: str, name: str) -> str:
    path = os.environ.get(var) or str(ROOT / "build" / "bin" / name)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} not built ({path}); set {var}")
    return path


class Broker:
    """A ternd child process on 127.0.0.1; restart() keeps its port."""

    def __init__(self, ternd: str, *args: str) -> None:
        self.ternd = ternd
        self.args = list(args)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None
        self.start()

    @property
    def url(self) -> str:
        return f"tern://127.0.0.1:{self.port}"

    def start(self) -> None:
        r, w = os.pipe()
        cmd = [self.ternd, "--host", "127.0.0.1", "--port", str(self.port), "--ready-fd", str(w),
               "--http-port", "0", "--log-level", "error", *self.args]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, pass_fds=(w,), stderr=self.log)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            line = f.readline()
        if not line.strip():
            self.proc.wait(5)
            raise RuntimeError(f"ternd did not start: {cmd}")
        self.port = int(line)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stops ternd; fails if it reported a sanitizer error (the ASan
        build's) or, stopped by SIGTERM, did not exit 0."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            rc = self.proc.wait(30)
            self.proc = None
            self.log.seek(0)
            log = self.log.read().decode(errors="replace")
            self.log.close()
            assert not SANITIZER.search(log), f"ternd reported:\n{log}"
            assert sig != signal.SIGTERM or rc == 0, f"ternd exited {rc} after SIGTERM:\n{log}"

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def ternd_path() -> str:
    return _binary("TERND", "ternd")


@pytest.fixture(scope="session")
def tern_cli() -> str:
    return _binary("TERN", "tern")


@pytest.fixture
def broker(ternd_path: str):
    b = Broker(ternd_path)
    yield b
    b.stop()


@pytest.fixture
def make_broker(ternd_path: str):
    made: list[Broker] = []

    def make(*args: str) -> Broker:
        b = Broker(ternd_path, *args)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_asyncio_errors():
    """Fails a test after which asyncio logged an error: "Task was destroyed
    but it is pending", "Task exception was never retrieved", an exception
    in a callback. (Warnings, unraisable exceptions included, are errors
    through pytest's filterwarnings.)"""
    h = _Collect()
    log = logging.getLogger("asyncio")
    log.addHandler(h)
    yield
    gc.collect()
    log.removeHandler(h)
    msgs = [r.getMessage() for r in h.records]
    assert not msgs, f"asyncio logged errors: {msgs}"
