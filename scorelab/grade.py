"""Grade a class's exercise notebooks in one command, in a sandbox, with feedback for every student.

    python -m scorelab.grade SUBMISSIONS... [--out grades.csv] [--jobs N] [--timeout 120]
                             [--notebook-timeout 600] [--memory 4096] [--sandbox auto|bwrap|none]

``SUBMISSIONS`` are notebooks or folders (every ``*.ipynb`` below them, checkpoints skipped).
Each notebook is graded in two sandboxed stages (see ``scorelab._grade_worker``):

1. its notebook runs from a clean kernel on a throw-away copy of its folder (per-cell and
   whole-notebook time limits, a memory limit, errors allowed), and the answer objects the
   exercise names are saved after the student's last cell;
2. a fresh interpreter, importing the checks from a copy of scorelab the student's code never
   touched, runs every part's check on those answers, each part in its own process with a
   time limit, then a hidden variant on inputs drawn from a seed the notebook never saw.

Nothing a notebook displays counts. With bubblewrap (``bwrap``) each stage sees the system
read-only, a private ``/tmp``, no network, its own PID namespace and neither the other
submissions nor the grader's files; without it (or with ``--sandbox none``) the stages are
subprocesses with resource limits only, and the grader says so loudly. Either way the
submitted files are read once into memory, graded from there, and restored if a notebook
changed them: they are byte-identical after grading.

Outputs: ``grades.csv`` (one row per notebook and part), one HTML report per notebook and a
class summary (``<out>-reports/``), and a table on the terminal. Results are cached by the
content of each submission (``<out>-reports/.cache``), so an interrupted run resumes where it
stopped; ``--jobs N`` grades N notebooks at once.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._sandbox import Sandbox, detect_mode

__all__ = ["GradeRow", "NotebookResult", "find_notebooks", "grade", "main"]

GRADER_VERSION = "2"
_PACKAGE = Path(__file__).resolve().parent
_CHECK_CALL = re.compile(r"""check\(\s*["']([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+)["']""")
_MAX_FILE = 16 * 1024 * 1024  # larger files beside a notebook are not copied into its sandbox
_MAX_FOLDER = 64 * 1024 * 1024
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git", ".venv", "node_modules"}
_CHECK_STATUSES = ("pass", "fail", "todo", "missing")
_CSV_COLUMNS = ["notebook", "exercise", "part", "title", "status", "points", "max_points", "message",
                "hidden_check", "hidden_message", "notebook_showed"]


@dataclass
class GradeRow:
    notebook: str
    exercise: str
    part: str
    title: str
    status: str  # pass, fail, todo, missing (no answer object), error (the check could not run)
    points: float
    max_points: float
    message: str  # what the visible check says (what the student saw, re-run by the grader)
    hidden_check: str = "none"  # pass, fail, todo, skipped (visible check failed), none (no hidden variant)
    hidden_message: str = ""
    notebook_showed: str = ""  # the status the notebook itself displayed for this part (not trusted)


@dataclass
class NotebookResult:
    notebook: str
    rows: list[GradeRow]
    notes: list[str] = field(default_factory=list)  # cell errors, time limits, tampering found
    cell_errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False

    @property
    def points(self) -> float:
        return sum(r.points for r in self.rows)

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.rows)


# -- finding and snapshotting the submissions ---------------------------------------------------------

def find_notebooks(paths) -> list[Path]:
    """Every ``.ipynb`` named or found below the given paths, sorted, checkpoints skipped."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [q for q in p.rglob("*.ipynb") if not _SKIP_DIRS.intersection(q.parts)]
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: expected a .ipynb notebook or a folder of notebooks")
    return sorted({q.resolve() for q in found})


def _display_name(path: Path) -> str:
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


@dataclass
class _Submission:
    path: Path  # the notebook on disk
    name: str
    files: dict[str, bytes]  # its folder's files to copy, relative to the notebook's folder
    notebook_rel: str
    skipped: list[str]
    digest: str


def _snapshot(notebooks: list[Path], exclude: list[Path]) -> list[_Submission]:
    """Read every notebook, and the files beside it that belong to it, into memory.

    The files of a notebook's folder are copied into its sandbox, except other notebooks and
    folders holding other notebooks (other students' submissions), the grader's own outputs,
    and files over 16 MiB (64 MiB in all)."""
    all_nbs = set(notebooks)
    subs = []
    for nb in notebooks:
        folder = nb.parent
        files = {nb.name: nb.read_bytes()}
        skipped, total = [], len(files[nb.name])
        for root, dirs, names in os.walk(folder):
            root_p = Path(root)
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not _holds_other(root_p / d, nb, all_nbs)
                             and not any(_inside(root_p / d, e) for e in exclude))
            for n in sorted(names):
                p = root_p / n
                rel = str(p.relative_to(folder))
                if p == nb or p.suffix == ".ipynb" or any(_inside(p, e) for e in exclude) or not p.is_file():
                    continue
                size = p.stat().st_size
                if size > _MAX_FILE or total + size > _MAX_FOLDER:
                    skipped.append(rel)
                    continue
                files[rel] = p.read_bytes()
                total += size
        h = hashlib.sha256()
        for rel in sorted(files):
            h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
        h.update(b"notebook\0" + nb.name.encode())
        subs.append(_Submission(nb, _display_name(nb), files, nb.name, skipped, h.hexdigest()))
    return subs


def _holds_other(d: Path, nb: Path, all_nbs: set[Path]) -> bool:
    return any(o != nb and _inside(o, d) for o in all_nbs)


def _inside(p: Path, folder: Path) -> bool:
    try:
        p.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


class _Guard:
    """Keeps the bytes of every submitted file; puts back any file a notebook changed or deleted."""

    def __init__(self, subs: list[_Submission]):
        self.files: dict[Path, bytes] = {}
        for s in subs:
            for rel, data in s.files.items():
                self.files[(s.path.parent / rel)] = data
        self.lock = threading.Lock()

    def restore(self) -> list[str]:
        restored = []
        with self.lock:
            for path, data in self.files.items():
                try:
                    same = path.is_file() and not path.is_symlink() and path.read_bytes() == data
                except OSError:
                    same = False
                if not same:
                    if path.is_symlink():
                        path.unlink()
                    elif path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                    restored.append(_display_name(path))
        return restored


# -- one notebook ---------------------------------------------------------------------------------------

@dataclass
class _Settings:
    cell_timeout: int
    notebook_timeout: float
    check_timeout: float | None
    memory_mb: int
    exercises: tuple[str, ...]
    secret: str


def _package_files() -> dict[str, bytes]:
    files = {}
    for p in sorted(_PACKAGE.rglob("*.py")):
        if "__pycache__" not in p.parts:
            files[str(p.relative_to(_PACKAGE.parent))] = p.read_bytes()
    return files


def _write_code(files: dict[str, bytes], root: Path) -> Path:
    if root.is_symlink():
        root.unlink()
    elif root.exists():
        shutil.rmtree(root)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


_BOOT = ("import sys, types\n"
         "root, stage = sys.argv[1], sys.argv[2]\n"
         "sys.path.insert(0, root)\n"
         "if stage == 'run':  # no torch in the runner: a bare package object, no scorelab/__init__\n"
         "    pkg = types.ModuleType('scorelab'); pkg.__path__ = [root + '/scorelab']; sys.modules['scorelab'] = pkg\n"
         "import scorelab._grade_worker as w\n"
         "assert w.__file__.startswith(root), w.__file__\n"
         "sys.exit(w.main(sys.argv[2:]))\n")


def _detect_exercises(nb_bytes: bytes, known: set[str], filename: str = "") -> list[str]:
    """The exercises a notebook answers: those of its check(...) cells, else the one its file name
    starts with (``4.1-score-properties.ipynb``: 4.1)."""
    found = _exercises_in_cells(nb_bytes, known)
    if not found:
        found = [e for e in sorted(known) if filename == e or filename.startswith(e + "-")]
    return found


def _exercises_in_cells(nb_bytes: bytes, known: set[str]) -> list[str]:
    try:
        nb = json.loads(nb_bytes)
        sources = ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                   for c in nb.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    except (ValueError, AttributeError, TypeError):
        return []
    found = {p.rsplit(".", 1)[0] for src in sources for p in _CHECK_CALL.findall(src)}
    return sorted(e for e in found if e in known)


def _seed(secret: str, digest: str, part: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{secret}\0{digest}\0{part}".encode()).digest()[:7], "big")


class _Grader:
    def __init__(self, sandbox: Sandbox, settings: _Settings, guard: _Guard, workroot: Path):
        from ._exercise_kit import REGISTRY
        from .exercises import parts

        parts()
        self.registry = dict(REGISTRY)
        self.exercises = {p.rsplit(".", 1)[0] for p in self.registry}
        self.sandbox, self.settings, self.guard, self.workroot = sandbox, settings, guard, workroot
        self.code = _package_files()
        self.python = sys.executable

    def _inside(self, host: Path, inside: str) -> str:
        return inside if self.sandbox.mode == "bwrap" else str(host)

    def grade(self, sub: _Submission) -> NotebookResult:
        exercises = sorted(set(self.settings.exercises) or set(_detect_exercises(
            sub.files[sub.notebook_rel], self.exercises, Path(sub.notebook_rel).stem)))
        result = NotebookResult(sub.name, [])
        if sub.skipped:
            result.notes.append(f"not copied into the sandbox (too large): {', '.join(sub.skipped[:5])}")
        if not exercises:
            result.notes.append("no exercise detected (no check(...) cell of a known part, no exercise in the file "
                                "name): nothing graded; name it with --exercise")
            return result
        parts = [p for p in sorted(self.registry) if p.rsplit(".", 1)[0] in exercises]
        names = sorted({n for p in parts for n in self.registry[p].answers})
        ws = Path(tempfile.mkdtemp(prefix="job-", dir=self.workroot))
        try:
            return self._grade_in(ws, sub, parts, names, result)
        finally:
            shutil.rmtree(ws, ignore_errors=True)

    def _grade_in(self, ws: Path, sub: _Submission, parts: list[str], names: list[str],
                  result: NotebookResult) -> NotebookResult:
        s = self.settings
        subdir, out = ws / "submission", ws / "out"
        for rel, data in sub.files.items():
            (subdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (subdir / rel).write_bytes(data)
        out.mkdir()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "JUPYTER_PLATFORM_DIRS": "1",
               "PLOTLY_RENDERER": "json", "LANG": "C.UTF-8"}
        for key in ("SCORELAB_FAST",):
            if key in os.environ:
                env[key] = os.environ[key]
        in_sub, in_out = self._inside(subdir, "/tmp/submission"), self._inside(out, "/tmp/out")
        code_a = _write_code(self.code, ws / "code-run")
        in_code_a = self._inside(code_a, "/tmp/code")
        nb_inside = f"{in_sub}/{sub.notebook_rel}"
        argv = [self.python, "-I", "-c", _BOOT, in_code_a, "run", "--notebook", nb_inside, "--out", in_out,
                "--cell-timeout", str(s.cell_timeout), "--total-timeout", str(s.notebook_timeout),
                "--memory-mb", str(s.memory_mb), "--names", *names]
        run = self.sandbox.run(argv, binds={"/tmp/submission": subdir, "/tmp/out": out},
                               ro_binds={"/tmp/code": code_a}, cwd=str(Path(nb_inside).parent), env=env,
                               timeout=s.notebook_timeout + 180, home=ws / "home", logs=ws / "logs-run")
        result.seconds += run.seconds
        record = _read_json(out / "run.json", {})
        if run.timed_out:
            result.notes.append(f"the notebook ran past the whole-notebook limit ({s.notebook_timeout:g} s) and was "
                                "killed; answers defined before that may be missing")
        elif not isinstance(record, dict) or not record:
            result.notes.append(f"the notebook's process ended without a result (exit code {run.returncode})")
        record = record if isinstance(record, dict) else {}
        if isinstance(record.get("error"), str) and record["error"]:
            result.notes.append(record["error"][:300])
        if isinstance(record.get("skipped_from"), int):
            result.notes.append(f"the whole-notebook time limit ({s.notebook_timeout:g} s) was reached: cells from "
                                f"index {record['skipped_from']} on were skipped")
        if record.get("timed_out"):
            result.notes.append(f"{len(record['timed_out'])} cell(s) stopped at the per-cell limit "
                                f"({s.cell_timeout} s)")
        errors = record.get("cell_errors") if isinstance(record.get("cell_errors"), list) else []
        result.cell_errors = [e for e in errors if isinstance(e, dict)][:50]
        displayed = record.get("displayed") if isinstance(record.get("displayed"), dict) else {}
        if self.sandbox.mode != "bwrap":
            restored = self.guard.restore()
            if restored:
                result.notes.append(f"TAMPERING: the notebook changed or deleted submitted files, restored: "
                                    f"{', '.join(restored[:5])}")

        # stage 2: a fresh interpreter with a fresh copy of the checks
        code_b = _write_code(self.code, ws / "code-check")
        answers = out / "answers"
        answers.mkdir(parents=True, exist_ok=True)
        config = {"parts": parts, "time_limit": s.check_timeout,
                  "seeds": {p: _seed(s.secret, self._digest(sub), p) for p in parts}}
        per_part = [2 * (s.check_timeout or self.registry[p].time_limit) + 35 for p in parts]
        argv = [self.python, "-I", "-c", _BOOT, self._inside(code_b, "/tmp/code"), "check",
                "--answers", self._inside(answers, "/tmp/answers"), "--memory-mb", str(s.memory_mb)]
        home = ws / "home-check"
        home.mkdir(parents=True, exist_ok=True)
        check = self.sandbox.run(argv, binds={}, ro_binds={"/tmp/code": code_b, "/tmp/answers": answers},
                                 cwd=self._inside(home, "/tmp"), env=env, timeout=sum(per_part) + 120,
                                 stdin=(json.dumps(config) + "\n").encode(), home=home, logs=ws / "logs-check")
        result.seconds += check.seconds
        found = {}
        for line in check.stdout.decode("utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and r.get("part") in parts and r.get("status") in _CHECK_STATUSES:
                found[r["part"]] = r
        if len(found) < len(parts):
            result.notes.append("the checking process stopped early"
                                + (" (time limit)" if check.timed_out else f" (exit code {check.returncode})"))
        for p in parts:
            spec = self.registry[p]
            r = found.get(p)
            shown = displayed.get(p) if isinstance(displayed.get(p), dict) else {}
            shown_status = str(shown.get("status", ""))[:20]
            if r is None:
                row = GradeRow(sub.name, p.rsplit(".", 1)[0], p, spec.title, "error", 0.0, spec.points,
                               "评分程序没能完成这道题的检查（检查进程提前结束）。", "none", "", shown_status)
            else:
                status, hidden = r["status"], str(r.get("hidden", "none"))
                if status == "pass" and hidden not in ("pass", "none"):
                    status = "fail"
                points = spec.points if status == "pass" else 0.0
                row = GradeRow(sub.name, p.rsplit(".", 1)[0], p, spec.title, status, points, spec.points,
                               str(r["message"]), hidden, str(r.get("hidden_message", "")), shown_status)
            result.rows.append(row)
            if shown_status == "pass" and row.status != "pass":
                result.notes.append(f"SUSPICIOUS: the notebook displayed a pass for {p} that the grader's own check "
                                    "does not confirm")
        if self.sandbox.mode != "bwrap":
            restored = self.guard.restore()
            if restored:
                result.notes.append(f"TAMPERING: submitted files changed during the checks, restored: "
                                    f"{', '.join(restored[:5])}")
        return result

    @staticmethod
    def _digest(sub: _Submission) -> str:
        return sub.digest


def _read_json(path: Path, default, limit: int = 16 * 1024 * 1024):
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
            return default
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return default


# -- the class --------------------------------------------------------------------------------------------

def _cache_key(sub: _Submission, settings: _Settings, code: dict[str, bytes]) -> str:
    h = hashlib.sha256(GRADER_VERSION.encode())
    for rel in sorted(code):
        h.update(rel.encode() + hashlib.sha256(code[rel]).digest())
    h.update(json.dumps({k: v for k, v in asdict(settings).items()}, sort_keys=True).encode())
    h.update(sub.digest.encode())
    return h.hexdigest()


def _load_cached(path: Path, name: str) -> NotebookResult | None:
    data = _read_json(path, None)
    try:
        rows = [GradeRow(**{**r, "notebook": name}) for r in data["rows"]]
        return NotebookResult(name, rows, list(data["notes"]), list(data["cell_errors"]), float(data["seconds"]),
                              cached=True)
    except (TypeError, KeyError, ValueError):
        return None


def grade(paths, *, out: str | Path = "grades.csv", reports: str | Path | None = None, jobs: int = 1,
          cell_timeout: int = 120, notebook_timeout: float = 600, check_timeout: float | None = None,
          memory_mb: int = 4096, sandbox: str = "auto", exercises=(), seed: str | None = None,
          cache: bool = True, progress: bool = True, log=print) -> list[NotebookResult]:
    """Grade every notebook under ``paths``; write the CSV, the reports and the class summary.
    Returns the results, one per notebook (see the module docstring)."""
    from ._grade_report import write_reports

    notebooks = find_notebooks(paths)
    if not notebooks:
        raise FileNotFoundError("no notebooks found")
    out = Path(out).resolve()
    reports = Path(reports).resolve() if reports else out.with_name(out.stem + "-reports")
    cache_dir = reports / ".cache"
    mode, reason = detect_mode(sandbox)
    if mode == "bwrap":
        log(f"sandbox: bubblewrap ({reason}): read-only system, private /tmp, no network, own PID namespace")
    else:
        log("!" * 100)
        log(f"WARNING: sandbox: FALLBACK, no bubblewrap ({reason}).")
        log("Notebooks run as plain subprocesses with resource limits only: a hostile notebook can read and write")
        log("whatever this user can. Submitted files are restored after each notebook; install bubblewrap for real")
        log("isolation (apt-get install bubblewrap).")
        log("!" * 100)
    subs = _snapshot(notebooks, exclude=[reports, out])
    cache_dir.mkdir(parents=True, exist_ok=True)
    secret_file = cache_dir / "secret"
    if seed is None:
        if not secret_file.is_file():
            secret_file.write_text(secrets.token_hex(16))
            secret_file.chmod(0o600)
        seed = secret_file.read_text().strip()
    settings = _Settings(int(cell_timeout), float(notebook_timeout), None if check_timeout is None else
                         float(check_timeout), int(memory_mb), tuple(sorted(exercises)), str(seed))
    # what the sandbox must not see: the submissions' folders and the grader's output (a folder that
    # holds the Python installation or scorelab itself stays visible, its submitted files are covered)
    hide = sorted({s.path.parent for s in subs} | {reports, out.parent})
    essentials = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), _PACKAGE.parent]
    hide_dirs = [d for d in hide if not any(_inside(e, d) for e in essentials) and d != Path("/")]
    hide_files = [p for p in [*(s.path.parent / r for s in subs for r in s.files), out]
                  if not any(_inside(p, d) for d in hide_dirs)]
    guard = _Guard(subs)
    workroot = Path(tempfile.mkdtemp(prefix="scorelab-grade-"))
    grader = _Grader(Sandbox(mode, hide=hide_dirs, hide_files=hide_files), settings, guard, workroot)
    results: dict[str, NotebookResult] = {}
    todo = []
    for sub in subs:
        key = _cache_key(sub, settings, grader.code)
        cached = _load_cached(cache_dir / f"{key}.json", sub.name) if cache else None
        if cached is not None:
            results[sub.name] = cached
        else:
            todo.append((sub, key))
    if len(todo) < len(subs):
        log(f"resuming: {len(subs) - len(todo)} notebook(s) already graded (cache {cache_dir})")
    retry = []
    try:
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="grading", unit="nb", file=sys.stderr)
        with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            futures = {pool.submit(grader.grade, sub): (sub, key) for sub, key in todo}
            for fut in as_completed(futures):
                sub, key = futures[fut]
                try:
                    res = fut.result()
                except Exception:  # the grader failed on this notebook (without bubblewrap, another
                    res = None    # notebook may have disturbed its files): graded again at the end
                if res is None:
                    retry.append((sub, key))
                    continue
                results[sub.name] = res
                _store(cache_dir, key, res, cache)
                if bar is not None:
                    bar.update(1)
        for sub, key in retry:  # one at a time
            try:
                res = grader.grade(sub)
            except Exception as exc:
                res = NotebookResult(sub.name, [], [f"grader error: {type(exc).__name__}: {exc}"[:300]])
            results[sub.name] = res
            _store(cache_dir, key, res, cache)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
        restored = guard.restore()
        if restored:
            log(f"restored {len(restored)} submitted file(s) that a notebook changed: {', '.join(restored[:5])}")
    ordered = [results[s.name] for s in subs]
    _write_csv(out, ordered)
    write_reports(reports, ordered, sandbox_line=(mode, reason))
    return ordered


def _store(cache_dir: Path, key: str, res: NotebookResult, cache: bool) -> None:
    if cache and res.rows:
        tmp = cache_dir / f"{key}.json.tmp"
        tmp.write_text(json.dumps({"rows": [asdict(r) for r in res.rows], "notes": res.notes,
                                   "cell_errors": res.cell_errors, "seconds": res.seconds}, ensure_ascii=False))
        tmp.replace(cache_dir / f"{key}.json")


def _write_csv(path: Path, results: list[NotebookResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(_CSV_COLUMNS)
        for res in results:
            for r in res.rows:
                w.writerow([getattr(r, c) for c in _CSV_COLUMNS])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorelab.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--out", default="grades.csv", help="CSV file to write (default grades.csv)")
    parser.add_argument("--reports", default=None, help="folder for the HTML reports (default <out>-reports)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell (default 120)")
    parser.add_argument("--notebook-timeout", type=float, default=600,
                        help="seconds allowed for all the cells of one notebook (default 600)")
    parser.add_argument("--check-timeout", type=float, default=None,
                        help="seconds allowed for each part's check (default: the part's own limit, 60)")
    parser.add_argument("--memory", type=int, default=4096, help="memory limit per process in MiB (default 4096)")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                        help="bubblewrap when it works (auto), required (bwrap), or plain subprocesses (none)")
    parser.add_argument("--exercise", action="append", default=[],
                        help="grade these exercises (e.g. 4.1; repeatable) instead of those the notebook checks")
    parser.add_argument("--seed", default=None, help="secret for the hidden checks' inputs (default: random, kept "
                                                      "in the cache so that a resumed run draws the same)")
    parser.add_argument("--no-cache", action="store_true", help="grade every notebook again")
    args = parser.parse_args(argv)
    for name in ("jobs", "timeout", "memory"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a positive number, got {getattr(args, name)}")
    try:
        results = grade(args.submissions, out=args.out, reports=args.reports, jobs=args.jobs,
                        cell_timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                        check_timeout=args.check_timeout, memory_mb=args.memory, sandbox=args.sandbox,
                        exercises=args.exercise, seed=args.seed, cache=not args.no_cache,
                        log=lambda m: print(m, file=sys.stderr))
    except FileNotFoundError as exc:
        parser.error(str(exc))
    except RuntimeError as exc:  # --sandbox bwrap where it cannot run
        parser.error(str(exc))
    width = max(len(r.notebook) for r in results)
    print(f"{'notebook':{width}s}  {'points':>9s}  parts (pass / fail / to do / missing / error)  note")
    for res in results:
        counts = [sum(r.status == s for r in res.rows) for s in ("pass", "fail", "todo", "missing", "error")]
        note = "; ".join(res.notes)[:160]
        print(f"{res.notebook:{width}s}  {res.points:4g} / {res.max_points:<3g}  "
              f"{' / '.join(map(str, counts)):44s}  {note}")
    reports = Path(args.reports) if args.reports else Path(args.out).with_name(Path(args.out).stem + "-reports")
    print(f"wrote {args.out} ({sum(len(r.rows) for r in results)} rows) and {reports}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
