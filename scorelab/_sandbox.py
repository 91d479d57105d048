"""Run an untrusted command in a sandbox: bubblewrap when it works, else a limited subprocess.

With bubblewrap (``bwrap``, Debian package ``bubblewrap``) the command sees the system
read-only, a private ``/tmp``, no network (a new network namespace with only loopback), its
own PID namespace (it cannot see or signal any process outside), no capabilities, and only the
folders bound into it writable; the folders to hide (the other submissions, the grader's
output) are covered by empty file systems. Without bubblewrap (or with ``mode="none"``) it is a
subprocess in its own session with the same resource limits, a private ``HOME`` and
``TMPDIR``, and nothing else: it can read and write whatever the grading user can.

In both modes: a wall-clock limit after which the whole process tree is killed (its process
group; with bubblewrap, the PID namespace dies with it). The resource limits (memory, file
size, core dumps) are set by the command itself before it runs anything untrusted
(:func:`apply_limits`, called first by ``scorelab._grade_worker``), and are inherited by every
process it starts.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sandbox", "SandboxResult", "apply_limits", "detect_mode"]

_MIB = 1024 * 1024


@dataclass
class SandboxResult:
    returncode: int | None  # None: killed at the wall-clock limit
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool


def detect_mode(requested: str = "auto") -> tuple[str, str]:
    """``("bwrap" | "none", reason)``: which sandbox runs, and why (for the loud line)."""
    if requested not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox: expected 'auto', 'bwrap' or 'none', got {requested!r}")
    if requested == "none":
        return "none", "bubblewrap not used (--sandbox none)"
    exe = shutil.which("bwrap")
    if exe is None:
        reason = "bubblewrap (bwrap) is not installed; on Debian/Ubuntu: apt-get install bubblewrap"
        if requested == "bwrap":
            raise RuntimeError(reason)
        return "none", reason
    probe = [exe, *_bwrap_base_args(), "--", sys.executable, "-I", "-c", "print('ok')"]
    try:
        out = subprocess.run(probe, capture_output=True, timeout=60)
        works = out.returncode == 0 and out.stdout.strip() == b"ok"
        detail = out.stderr.decode(errors="replace").strip().splitlines()[-1:] if not works else []
    except (OSError, subprocess.TimeoutExpired) as exc:
        works, detail = False, [str(exc)]
    if not works:
        reason = "bubblewrap is installed but cannot create its namespaces here" + (f" ({detail[0]})" if detail else "")
        if requested == "bwrap":
            raise RuntimeError(reason)
        return "none", reason
    return "bwrap", f"bubblewrap {exe}"


def _bwrap_base_args() -> list[str]:
    return ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]


@dataclass
class Sandbox:
    """One sandboxed command runner.

    Args:
        mode: ``"bwrap"`` or ``"none"`` (see :func:`detect_mode`).
        hide: host folders the command must not see (bubblewrap only): covered by an empty tmpfs.
        hide_files: host files to cover with an empty file (bubblewrap only).
    """

    mode: str
    hide: list[Path] = field(default_factory=list)
    hide_files: list[Path] = field(default_factory=list)

    def run(self, argv: list[str], *, binds: dict[str, Path], ro_binds: dict[str, Path], cwd: str,
            env: dict[str, str], timeout: float, stdin: bytes = b"", home: Path, logs: Path) -> SandboxResult:
        """Run ``argv`` with the host folders ``binds`` (writable) and ``ro_binds`` (read-only)
        mounted at the given paths inside, starting in ``cwd`` (an inside path), with exactly the
        environment ``env`` (plus ``HOME``/``TMPDIR``), killed with its whole tree after
        ``timeout`` seconds. Without bubblewrap nothing is mounted: the inside paths are the host
        folders themselves (``binds`` and ``ro_binds`` map each inside path to itself), ``HOME``
        is ``home`` and the command runs in ``cwd``. Its standard output and error go to files in
        the host folder ``logs`` (not visible inside), of which the first 4 MiB are returned."""
        env = dict(env)
        if self.mode == "bwrap":
            args = [shutil.which("bwrap") or "bwrap", *_bwrap_base_args()]
            for path in self.hide:
                if path.is_dir():
                    args += ["--tmpfs", str(path)]
            for path in self.hide_files:
                if path.is_file():
                    args += ["--ro-bind", "/dev/null", str(path)]
            for inside, host in ro_binds.items():
                args += ["--ro-bind", str(host), inside]
            for inside, host in binds.items():
                args += ["--bind", str(host), inside]
            env.update(HOME="/tmp/home", TMPDIR="/tmp")
            args += ["--dir", "/tmp/home", "--chdir", cwd, "--clearenv"]
            for key, value in env.items():
                args += ["--setenv", key, value]
            command, popen_env, popen_cwd = [*args, "--", *argv], {"PATH": os.environ.get("PATH", "")}, None
        else:
            home.mkdir(parents=True, exist_ok=True)
            env.update(HOME=str(home), TMPDIR=str(home))
            command, popen_env, popen_cwd = list(argv), env, cwd
        logs.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        timed_out = False
        # read back through the open files: the command may delete or replace them (without bubblewrap)
        with open(logs / "stdout", "w+b") as fout, open(logs / "stderr", "w+b") as ferr:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=fout, stderr=ferr, env=popen_env,
                                    cwd=popen_cwd, start_new_session=True)
            try:
                proc.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)  # also what the command left behind in its group (a daemon it started)
                proc.wait()
            out, err = (_head(f) for f in (fout, ferr))
        return SandboxResult(None if timed_out else proc.returncode, out, err, time.monotonic() - start, timed_out)


def apply_limits(memory_mb: int, file_mb: int = 256) -> None:
    """Limit this process and everything it starts: ``memory_mb`` MiB of address space per
    process, files of at most ``file_mb`` MiB, no core dumps."""
    as_bytes = int(memory_mb) * _MIB
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(file_mb) * _MIB, int(file_mb) * _MIB))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _head(f, n: int = 4 * _MIB) -> bytes:
    f.seek(0)
    return f.read(n)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
