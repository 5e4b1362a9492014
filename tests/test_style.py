"""The style is enforced, not hoped for: ruff (pyflakes, pycodestyle at 120 columns, isort, bugbear,
pyupgrade, complexity at most 15) and mypy on ``src/hone``, both configured in pyproject.toml; and
no ``Any`` in the signatures hone exports."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import hone

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_ruff_passes() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "--no-cache", "src", "tests", "bench"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_refuses_a_function_over_the_complexity_limit(tmp_path: Path) -> None:
    """The limit is live: a function with 16 branches is refused with the project's own settings."""
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(16))
    (tmp_path / "tangled.py").write_text(f"def tangled(x: int) -> int:\n{branches}\n    return -1\n")
    proc = subprocess.run([_tool("ruff"), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                           str(tmp_path / "tangled.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "C901" in proc.stdout, proc.stdout


def test_mypy_passes(tmp_path: Path) -> None:
    proc = subprocess.run([_tool("mypy"), "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_any_in_the_exported_signatures() -> None:
    """Every function in ``hone.__all__``, and every public method of :class:`hone.Model`, says what it
    takes and returns."""
    found = []
    for name in hone.__all__:
        obj = getattr(hone, name)
        members = [(name, obj)] if inspect.isfunction(obj) else [  # a class: its own public methods (not pydantic's)
            (f"{name}.{n}", f) for n, f in inspect.getmembers(obj, inspect.isfunction)
            if not n.startswith("_") and f.__module__.startswith("hone")]
        found += [f"{n}{inspect.signature(f)}" for n, f in members if "Any" in str(inspect.signature(f))]
    assert not found, found
