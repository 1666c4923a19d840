"""The README's offline install works: pip install --no-build-isolation
into a venv that sees Debian's packages (Debian's own Python refuses pip
installs outside a venv: PEP 668)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1]


def test_pip_install_offline(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: setuptools builds in the source tree
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("tests", "bench", "build",
                                                            "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    r = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                       capture_output=True, text=True)
    if r.returncode != 0 or not (venv / "bin" / "pip").exists():
        pytest.skip(f"no venv with pip here (python3-venv): {r.stderr.strip()[:200]}")
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-build-isolation",
                        "--no-index", str(src)], capture_output=True, text=True)
    if r.returncode != 0 and "setuptools" in r.stderr and "No module" in r.stderr:
        pytest.skip("python3-setuptools missing")
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import tern, pathlib; print(tern.__version__, "
                          "(pathlib.Path(tern.__file__).parent / 'py.typed').exists())"],
                         capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split() == ["0.1.0", "True"]
