"""The floors of DESIGN.md and STYLE.md hold, are enforced, and the CLI starts without the heavy libraries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=180, env=env)


def test_import_layers_are_kept() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize(("module", "code", "contract"), [
    # the arrows of the old cycle api -> tune -> distributed -> api, and a use calling the face
    ("search/_violation.py", "from hone import api\n", "the uses never import the face"),
    ("serve.py", "import hone.api\n", "the uses never import the face"),
    # two uses are independent siblings
    ("federated/_violation.py", "import hone.search.study\n", "hone floors"),
    # a lower floor reaching up
    ("evaluation/_violation.py", "import hone.pipeline\n", "hone floors"),
    # the CLI past the api
    ("cli.py", "import hone.pipeline.runs\n", "the CLI imports only"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, code: str, contract: str) -> None:
    """A copy of the package with one forbidden arrow added (a new module, or a line appended to an
    existing one) fails ``lint-imports`` on the contract that names it: the contracts are not vacuous."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "hone", copy / "hone", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = copy / "hone" / module
    target.write_text((target.read_text(encoding="utf-8") + "\n" if target.exists() else "") + code, encoding="utf-8")
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(copy)}
    proc = _lint(tmp_path, env)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "BROKEN" in proc.stdout and contract in proc.stdout.split("Broken contracts")[-1], proc.stdout[-2000:]


def test_help_imports_no_torch() -> None:
    code = ("import sys; from hone.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'duckdb', 'sklearn') if m in sys.modules]\n"
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "fit" in proc.stdout and "predict" in proc.stdout
