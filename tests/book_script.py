"""scripts/book.py loaded as a module, for the tests of the book pipeline (test_book, test_browser)."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("scorelab_book_script", REPO / "scripts" / "book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


book = sys.modules.get("scorelab_book_script") or _load()
