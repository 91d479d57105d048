"""The two stages of grading one submission, each run inside a sandbox by ``scorelab.grade``.

``python -m scorelab._grade_worker run ...``: execute the student's notebook from a clean
kernel (per-cell and whole-notebook time limits, errors allowed), then, in the same kernel,
save the answer objects the exercise names (``cloudpickle``) and the source of the student's
cells (for the line numbers in messages). It also records what the notebook displayed and
which cells failed. Everything this stage writes is under the student's control and is treated
as untrusted data.

``python -m scorelab._grade_worker check ...``: a fresh interpreter that imports the checks
from a copy of scorelab made by the grader, never touched by the student's code. For each
part it forks a child that loads that part's answers, runs the visible check and, when it
passes, the hidden variant on inputs drawn from a seed the notebook never saw, and sends back
one JSON line. The student's code runs only in that child (when its objects are loaded and
called): the parent is not dumpable (the child cannot read its memory or open its files), and
a child that crashes, hangs or kills itself costs only its own part.

Both stages limit their own resources first (``scorelab._sandbox.apply_limits``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time

_HARVEST = r'''
def __scorelab_harvest(out, names):
    import json, linecache, os, pickle
    import cloudpickle
    ns = globals()
    index = {}
    for name in names:
        if name not in ns:
            index[name] = {"state": "missing"}
            continue
        try:
            with open(os.path.join(out, name + ".pkl"), "wb") as f:
                cloudpickle.dump(ns[name], f, protocol=pickle.HIGHEST_PROTOCOL)
            index[name] = {"state": "ok"}
        except BaseException as exc:
            index[name] = {"state": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    sources = {k: "".join(v[2]) for k, v in list(linecache.cache.items())
               if isinstance(v, tuple) and len(v) > 2 and ("ipykernel_" in k or k.startswith("<ipython-input"))}
    with open(os.path.join(out, "sources.json"), "w") as f:
        json.dump(sources, f)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
__scorelab_harvest(%(out)r, %(names)r)
del __scorelab_harvest
'''


def _run(args) -> int:
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from ._nbexec import execute_notebook

    answers_dir = os.path.join(args.out, "answers")
    os.makedirs(answers_dir, exist_ok=True)
    record: dict = {"error": "", "cell_errors": [], "displayed": {}, "skipped_from": None, "timed_out": []}
    nb = None
    start = time.monotonic()
    try:
        nb = nbformat.read(args.notebook, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        epilogue = _HARVEST % {"out": answers_dir, "names": list(args.names)}
        env = dict(os.environ)
        execute_notebook(nb, cwd=os.path.dirname(args.notebook), timeout=args.cell_timeout, env=env,
                         allow_errors=True, total_timeout=args.total_timeout, epilogue=epilogue,
                         epilogue_timeout=120)
    except DeadKernelError:
        record["error"] = "kernel died"
    except CellTimeoutError:
        record["error"] = "a cell ran past its time limit"
    except Exception as exc:  # an unreadable notebook, a kernel that would not start
        record["error"] = f"{type(exc).__name__}: {exc}"[:300]
    record["seconds"] = round(time.monotonic() - start, 2)
    if nb is not None:
        meta = nb.metadata.get("scorelab_execution", {})
        record["skipped_from"] = meta.get("skipped_from")
        record["timed_out"] = meta.get("timed_out", [])
        harvest_errors = [o for o in meta.get("epilogue_outputs", []) if o.get("output_type") == "error"]
        if harvest_errors and not record["error"]:
            e = harvest_errors[0]
            record["error"] = f"saving the answers failed: {e.get('ename')}: {e.get('evalue')}"[:300]
        mime = "application/vnd.scorelab.check+json"
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    record["cell_errors"].append({"cell": index, "ename": str(out.get("ename"))[:100],
                                                  "evalue": str(out.get("evalue"))[:300]})
                data = out.get("data", {}) if out.get("output_type") in ("execute_result", "display_data") else {}
                shown = data.get(mime)
                if isinstance(shown, dict) and isinstance(shown.get("part"), str):
                    record["displayed"][shown["part"][:40]] = {"status": str(shown.get("status"))[:20],
                                                               "message": str(shown.get("message"))[:2000]}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(record, f)
    return 0


# -- the check stage -------------------------------------------------------------------------------

def _not_dumpable() -> None:
    """PR_SET_DUMPABLE = 0: processes of the same user (the children running student code) can
    neither ptrace this one nor open its /proc files (memory, file descriptors)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _open_plain(path: str):
    """Open a regular file for reading, never through a symbolic link (the answers folder was
    written by the student's code)."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{os.path.basename(path)} is not a regular file")
    return os.fdopen(fd, "rb")


def _check_part(part: str, answers_dir: str, index: dict, sources: dict, seed: int, limit) -> dict:
    """In the forked child: load the answers of ``part``, run its visible and hidden checks."""
    import linecache
    import pickle

    import torch

    from ._exercise_kit import REGISTRY
    from .exercises import run_check

    spec = REGISTRY[part]
    for filename, text in sources.items():
        lines = text.splitlines(keepends=True)
        linecache.cache[filename] = (len(text), None, lines, filename)
    answers = []
    for name in spec.answers:
        try:
            with _open_plain(os.path.join(answers_dir, name + ".pkl")) as f:
                answers.append(pickle.load(f))
        except BaseException as exc:
            return {"status": "fail", "message": f"评分程序无法载入你的答案 {name}（{type(exc).__name__}: "
                                                 f"{str(exc)[:200]}）。", "hidden": "none", "hidden_message": ""}
    status, message = run_check(part, answers, limit=limit)
    result = {"status": status, "message": message, "hidden": "none", "hidden_message": ""}
    if spec.hidden:
        if status == "pass":
            h_status, h_message = run_check(part, answers, rng=torch.Generator().manual_seed(seed), limit=limit)
            if h_status == "pass":
                h_message = "在笔记本没有见过的输入上也通过了。"
            result.update(hidden=h_status, hidden_message=h_message)
        else:
            result.update(hidden="skipped", hidden_message="公开检查没有通过，未运行隐藏检查。")
    return result


def _fork_check(part: str, answers_dir: str, index: dict, sources: dict, seed: int, limit, deadline: float) -> dict:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only the pipe stays open, then the student's code may run
        code = 0
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(r)
            keep = {0, 1, 2, w}
            for fd in range(3, 1024):
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            data = json.dumps(_check_part(part, answers_dir, index, sources, seed, limit)).encode() + b"\n"
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks, size, status = [], 0, None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([r], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if b"\n" in chunk or size > 1 << 20:
                break
        else:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                ready, _, _ = select.select([r], [], [], 0.2)
                if ready:
                    chunks.append(os.read(r, 1 << 20))
                break
    timed_out = time.monotonic() >= deadline
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
    os.close(r)
    line = b"".join(chunks).split(b"\n", 1)[0]
    try:
        result = json.loads(line)
        if not (isinstance(result, dict) and result.get("status") in ("pass", "fail", "todo")
                and isinstance(result.get("message"), str)):
            raise ValueError
        return {k: str(result.get(k, ""))[:4000] for k in ("status", "message", "hidden", "hidden_message")}
    except ValueError:
        pass
    if timed_out:
        why = "检查进程超过了时间限制，已被终止：你的代码可能陷入了死循环（或在循环里忽略了中断）。"
    elif status is not None and os.WIFSIGNALED(status):
        why = f"检查进程在运行你的代码时崩溃了（信号 {os.WTERMSIG(status)}，例如内存耗尽或段错误）。"
    else:
        why = "检查进程在运行你的代码时意外退出（例如调用了 os._exit 或 sys.exit），没有给出结果。"
    return {"status": "fail", "message": why, "hidden": "none", "hidden_message": ""}


def _check(args) -> int:
    _not_dumpable()
    config = json.loads(sys.stdin.readline() or "{}")
    sys.stdin.close()
    import torch

    torch.set_num_threads(1)
    from . import exercises
    from ._exercise_kit import REGISTRY

    exercises.parts()  # registers every check
    answers_dir = args.answers
    try:
        with _open_plain(os.path.join(answers_dir, "index.json")) as f:
            index = json.loads(f.read(1 << 20))
        if not isinstance(index, dict):
            index = {}
    except (OSError, ValueError):
        index = {}
    try:
        with _open_plain(os.path.join(answers_dir, "sources.json")) as f:
            sources = json.loads(f.read(16 << 20))
        sources = {str(k): str(v) for k, v in sources.items()} if isinstance(sources, dict) else {}
    except (OSError, ValueError):
        sources = {}
    limit = config.get("time_limit")
    for part in config.get("parts", []):
        spec = REGISTRY.get(part)
        if spec is None:
            continue
        absent = [n for n in spec.answers if not isinstance(index.get(n), dict) or index[n].get("state") != "ok"]
        if absent:
            name = absent[0]
            entry = index.get(name) if isinstance(index.get(name), dict) else {}
            if entry.get("state") == "error":
                message = (f"评分程序无法保存你的答案 {name}（{str(entry.get('error'))[:200]}）：答案对象要能被复制到"
                           "独立的检查进程里，请不要让它引用打开的文件、网络连接等无法序列化的对象。")
            else:
                message = (f"笔记本运行结束时没有定义 {name}：请保留题目给出的名字，并确认定义它的单元格运行时没有出错"
                           "（也没有超时）。")
            result = {"status": "missing", "message": message, "hidden": "none", "hidden_message": ""}
        else:
            seconds = float(limit) if limit else spec.time_limit
            deadline = time.monotonic() + 2 * seconds + 30
            result = _fork_check(part, answers_dir, index, sources, int(config["seeds"][part]), limit, deadline)
        result["part"] = part
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorelab._grade_worker")
    sub = parser.add_subparsers(dest="stage", required=True)
    run = sub.add_parser("run")
    run.add_argument("--notebook", required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--names", nargs="*", default=[])
    run.add_argument("--cell-timeout", type=int, default=120)
    run.add_argument("--total-timeout", type=float, default=600)
    check = sub.add_parser("check")
    check.add_argument("--answers", required=True)
    for p in (run, check):
        p.add_argument("--memory-mb", type=int, default=4096)
    args = parser.parse_args(argv)
    from ._sandbox import apply_limits

    apply_limits(args.memory_mb)
    return _run(args) if args.stage == "run" else _check(args)


if __name__ == "__main__":
    sys.exit(main())
