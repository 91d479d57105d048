"""Test-session settings shared by the unit tests and the executed notebooks.

- Under pytest-xdist every worker (and the notebook kernels it starts) uses one thread, so
  two workers on two cores do not oversubscribe the CPU.
- At the end of a run, the time spent executing each notebook is printed, with the total.
"""

import os
from collections import defaultdict

if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_NOTEBOOK_SECONDS: dict[str, float] = defaultdict(float)
_NOTEBOOK_FAILED: set[str] = set()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _NOTEBOOK_SECONDS[path] += report.duration
        if report.failed:
            _NOTEBOOK_FAILED.add(path)


def pytest_terminal_summary(terminalreporter):
    if not _NOTEBOOK_SECONDS:
        return
    tr = terminalreporter
    tr.section("notebook execution time")
    for path in sorted(_NOTEBOOK_SECONDS):
        mark = "  FAILED" if path in _NOTEBOOK_FAILED else ""
        tr.write_line(f"{_NOTEBOOK_SECONDS[path]:8.1f} s  {path}{mark}")
    total = sum(_NOTEBOOK_SECONDS.values())
    tr.write_line(f"{total:8.1f} s  total over {len(_NOTEBOOK_SECONDS)} notebooks (summed over workers)")
