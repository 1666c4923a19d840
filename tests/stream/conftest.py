"""Skips the stream tests, with the reason, while this build's store is the
stub that answers UV_ENOSYS (before the store engine is merged)."""
import os
import shutil
import subprocess
import tempfile

import pytest


def pytest_collection_modifyitems(config, items):
    d = tempfile.mkdtemp(prefix="tern-streams-probe-")
    try:
        conf = os.path.join(d, "probe.conf")
        with open(conf, "w") as f:
            f.write("[stream PROBE]\ntopics = probe\n")
        p = subprocess.Popen(
            [os.environ.get("TERND", "build/bin/ternd"), "--port", "0",
             "--http-port", "0", "--data-dir", d, "--config", conf],
            stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            p.terminate()
            p.communicate()
            err = b""
        if b"not implemented" in err:
            skip = pytest.mark.skip(
                reason="the stream store in this build is the stub (UV_ENOSYS): "
                "merge branch store for the engine")
            for item in items:
                item.add_marker(skip)
    finally:
        shutil.rmtree(d, ignore_errors=True)
