"""The documentation a person reads: the README (short, two set-up commands, the second being CI's),
the pages under docs/ built by MkDocs with --strict (a broken link or anchor fails), and the
glossary's table of settings, which is the code's flag table."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def _mkdocs(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mkdocs"))
    return subprocess.run([exe, "build", "--strict", "-d", str(site)], cwd=project, capture_output=True, text=True,
                          timeout=300, env=ENV)


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    proc = _mkdocs(ROOT, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    assert all((tmp_path / "site" / ("" if p == "index" else p) / "index.html").is_file() for p in pages), pages


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "usage.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the old section](glossary.md#no-such-word).\n",
                    encoding="utf-8")
    proc = _mkdocs(tmp_path, tmp_path / "site")
    assert proc.returncode != 0 and "no-such-word" in proc.stderr, proc.stderr[-2000:]


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 250
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup, re.S)
    assert len(commands) == 2, commands
    assert "hone fit" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1].strip() in ci  # CI runs the README's test command, word for word


def test_every_readme_link_resolves() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if not t.startswith("http")]
    assert links and all((ROOT / t).exists() for t in links), [t for t in links if not (ROOT / t).exists()]


def test_the_glossary_lists_the_flag_table_the_code_has() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from flag_table import table
    finally:
        sys.path.pop(0)
    assert table() in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
