"""The repository holds source, not artefacts: no binary file is tracked outside book/vendor/."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_BINARY_ROOTS = ("book/vendor/",)  # fonts of the vendored MathJax and widget manager


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def is_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB: git's own test for a binary file."""
    with open(path, "rb") as f:
        return b"\0" in f.read(8192)


def test_no_tracked_binary_outside_vendor():
    binaries = [p for p in tracked_files()
                if (ROOT / p).is_file() and not p.startswith(ALLOWED_BINARY_ROOTS) and is_binary(ROOT / p)]
    assert binaries == [], f"binary files tracked outside {ALLOWED_BINARY_ROOTS}: {binaries}"


def test_no_wheel_or_archive_is_tracked():
    suffixes = (".whl", ".tar.gz", ".zip", ".egg", ".pt", ".pth", ".safetensors", ".npz")
    found = [p for p in tracked_files() if p.endswith(suffixes)]
    assert found == [], f"packaged or data files tracked: {found}"
