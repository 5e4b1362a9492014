"""The flag table of docs/glossary.md, printed from the one flag table (hone.config.FLAGS).

    python docs/flag_table.py    # the table; tests/test_docs.py checks the glossary holds it
"""

from __future__ import annotations

from hone.config import FLAGS, command_flags, field_of, flag_of

COMMANDS = ("fit", "auto", "tune", "audit", "federate")


def table() -> str:
    rows = ["| short name | flag | config field | commands | what it sets |", "|---|---|---|---|---|"]
    for name, dotted in FLAGS.items():
        used = ", ".join(c for c in COMMANDS if name in command_flags(c))
        what = (field_of(dotted).description or "").replace("|", "\\|").split(". ")[0].rstrip(".")
        rows.append(f"| `{name}` | `{flag_of(name)}` | `{dotted}` | {used} | {what} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
