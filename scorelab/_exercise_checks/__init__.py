"""The checks behind ``scorelab.exercises.check``: one module per exercise (``ex4_1``, ...),
one function per part, registered with ``scorelab._exercise_kit.register``.

Each check takes the student's answer(s), compares them with an independent reference and
returns a short confirmation, or raises ``Mismatch`` naming the likely mistake.  References
are computed in float64, from autograd of a log-density or from scorelab's tested code,
never from the formula the student is asked to derive.  With ``rng`` (a ``torch.Generator``)
a check draws its inputs from the whole range the sheet states instead of the fixed inputs
the notebook shows: the class grader's hidden variant.  The helpers are in
``scorelab._exercise_kit``.
"""

from __future__ import annotations

import importlib
import pkgutil

# import every exercise module, so that its checks register themselves
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("ex")):
    importlib.import_module(f"{__name__}.{_module}")
