"""Execute a notebook from a clean kernel: the one routine behind the class grader
(``scorelab.grade``) and the book's decks (``scripts/book.py``).

The notebook runs in a fresh ``python3`` kernel started in ``cwd`` with the environment
``env`` (the caller's own environment is never modified, so several notebooks can run at
once from threads). The asynchronous kernel client waits for replies in 1 s polls
(:func:`poll_shell_in_slices`), a guard against a rare missed wake-up in nbclient.
"""

from __future__ import annotations

import os
from pathlib import Path
from time import monotonic

__all__ = ["execute_notebook", "poll_shell_in_slices", "sliced_get_msg"]

_SHELL_POLL_SLICE = 1.0  # seconds


def execute_notebook(nb, *, cwd, timeout: int, env: dict | None = None, allow_errors: bool = False,
                     total_timeout: float | None = None, epilogue: str | None = None,
                     epilogue_timeout: float = 60):
    """Execute ``nb`` (an ``nbformat`` notebook node) in place and return it.

    Args:
        nb: the notebook; its cells receive their outputs.
        cwd: folder the kernel starts in (relative paths in the notebook resolve from it).
        timeout: seconds allowed per cell.
        env: environment of the kernel (default: this process's environment).
        allow_errors: keep going after a cell raises (its error is in its outputs) and
            interrupt a cell that runs past its time (the cell gets a ``CellTimeoutError``
            output and the next cell starts); otherwise the first error raises
            ``nbclient.exceptions.CellExecutionError``.
        total_timeout: seconds for all the cells together (None: no such limit). A cell gets
            at most what is left; once nothing is left the remaining cells are skipped.
        epilogue: source of one more code cell, run in the same kernel after the notebook's
            cells (also after skipped ones), with ``epilogue_timeout`` seconds; it is not added
            to ``nb``. Its outputs are in ``nb.metadata["scorelab_execution"]["epilogue_outputs"]``.

    With ``total_timeout`` or ``epilogue``, ``nb.metadata["scorelab_execution"]`` records
    ``skipped_from`` (index of the first skipped cell, or None) and ``timed_out`` (indices of
    the cells stopped by a time limit).

    Raises:
        nbclient.exceptions.CellTimeoutError: a cell ran past ``timeout`` (without allow_errors).
        nbclient.exceptions.DeadKernelError: the kernel died.
    """
    from nbclient import NotebookClient

    poll_shell_in_slices()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            interrupt_on_timeout=allow_errors,
                            resources={"metadata": {"path": str(Path(cwd))}})
    env = dict(os.environ if env is None else env)
    if total_timeout is None and epilogue is None:
        client.execute(env=env)
        return nb
    if allow_errors:  # after interrupting a cell that ran past its time, go on at once
        client.error_on_timeout = {"ename": "CellTimeoutError", "evalue": "the cell ran past its time limit",
                                   "traceback": []}
    record = {"skipped_from": None, "timed_out": [], "epilogue_outputs": []}
    deadline = None if total_timeout is None else monotonic() + total_timeout
    client.reset_execution_trackers()
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            left = None if deadline is None else deadline - monotonic()
            if left is not None and left < 1:
                record["skipped_from"] = index
                break
            client.timeout = timeout if left is None else max(1, int(min(timeout, left)))
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
                record["timed_out"].append(index)
        if epilogue is not None:
            import nbformat

            extra = nbformat.v4.new_code_cell(epilogue)
            nb.cells.append(extra)  # nbclient writes the executed cell back at its index
            try:
                client.timeout = max(1, int(epilogue_timeout))
                client.execute_cell(extra, len(nb.cells) - 1, execution_count=client.code_cells_executed + 1)
            finally:
                nb.cells.pop()
            record["epilogue_outputs"] = extra.get("outputs", [])
    nb.metadata["scorelab_execution"] = record
    return nb


def poll_shell_in_slices() -> None:
    """Make the asynchronous kernel client wait for a reply in 1 s slices (idempotent).

    nbclient waits for a cell's ``execute_reply`` with one ``socket.poll`` lasting up to the
    cell timeout. Rarely, a notebook stalls with its kernel idle until that timeout runs out:
    the symptom of jupyter/nbclient#312, where the poll misses a reply already waiting on the
    socket and only returns when it times out. The stall does not reproduce on demand, so this
    is a guard rather than a proven fix: polling again every second finds such a reply at the
    next slice, bounding the cost of a missed wake-up to a second. Timeouts and cancellation
    behave as before.
    """
    from jupyter_client.channels import AsyncZMQSocketChannel

    if not getattr(AsyncZMQSocketChannel.get_msg, "_sliced", False):
        AsyncZMQSocketChannel.get_msg = sliced_get_msg(AsyncZMQSocketChannel.get_msg)


def sliced_get_msg(original, slice_s: float = _SHELL_POLL_SLICE):
    """Wrap an async ``get_msg(self, timeout=None)`` so that it waits in polls of at most
    ``slice_s`` seconds, up to the same overall ``timeout`` (None: forever)."""
    from queue import Empty
    from time import monotonic

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - monotonic())
            step = slice_s if left is None else min(slice_s, left)
            try:
                return await original(self, timeout=step)
            except Empty:
                if left is not None and left <= step:
                    raise

    get_msg._sliced = True
    return get_msg
