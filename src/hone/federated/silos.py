"""Split one table into N data silos for a simulated federation: at random (IID), by the values of a
column (one silo per region, branch, hospital...) or with Dirichlet label skew. Each silo is its own
Parquet file, which its simulated client alone reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hone._logging import get_logger
from hone.data.sources import connect, open_table
from hone.data.sql import qi, ql, qn
from hone.errors import ConfigError

logger = get_logger("hone.federate")


@dataclass
class Silos:
    """The silo files and how the rows were dealt."""

    paths: list[Path]
    rows: list[int]
    how: str
    groups: list[list[str]] | None = None  # --by: the column's values each silo holds

    def describe(self) -> str:
        sizes = ", ".join(f"{n:,}" for n in self.rows)
        return f"{len(self.paths)} silos ({self.how}): {sizes} rows"


def make_silos(source: Any, target: str, n: int | None, folder: Path, *, by: str | None = None,
               skew: float | None = None, seed: int = 0, memory_limit: str = "1GB") -> Silos:
    """Write ``folder/silo-<i>.parquet``, one per silo, and say how the rows were dealt.

    ``by``: one silo per value of that column (``n`` values or fewer: the values are dealt, largest
    first, to the smallest silo, so that ``n`` silos hold them all); ``skew``: the share of each class
    per silo drawn from Dirichlet(``skew``), the smaller the more skewed; neither: uniformly at random.
    Rows are dealt by a hash of their position and ``seed``: the same table gives the same silos."""
    if by and skew is not None:
        raise ConfigError("--by and --skew are two ways to deal rows to silos: give one")
    if skew is not None and skew <= 0:
        raise ConfigError(
            f"--skew {skew}: the Dirichlet concentration must be above 0 (0.1 very skewed, 100 nearly even)"
        )
    if n is not None and n < 2 and not by:
        raise ConfigError(f"--silos {n}: a federation needs at least 2 silos")
    folder.mkdir(parents=True, exist_ok=True)
    con = connect(folder, memory_limit, keep_order=True)
    try:
        table = open_table(source, con, work_dir=folder)
        cols = table.sql(f"SELECT * FROM {table.view} LIMIT 0").columns
        for col, what in ((target, "target"), (by, "--by column")):
            if col and col not in cols:
                from hone.errors import did_you_mean

                raise ConfigError(f"{what} {col!r} is not a column of {table.name}{did_you_mean(col, cols)}")
        con.execute(f"CREATE TEMP TABLE _rows AS SELECT *, row_number() OVER () AS _pos FROM {table.view}")
        groups = None
        if by:
            assign, groups, how = _by_column(con, by, n)
        elif skew is not None:
            assign, how = _dirichlet(con, target, int(n or 0), skew, seed), f"Dirichlet label skew, alpha {skew:g}"
        else:
            n = int(n or 0)
            assign, how = f"hash(_pos, {int(seed)}) % {n}", "uniformly at random"
        con.execute(f"CREATE TEMP TABLE _dealt AS SELECT *, CAST({assign} AS INTEGER) AS _silo FROM _rows")
        k = con.sql("SELECT max(_silo) + 1 FROM _dealt").fetchall()[0][0] or 0
        paths, rows = [], []
        for i in range(int(k)):
            path = folder / f"silo-{i}.parquet"
            con.execute(f"COPY (SELECT * EXCLUDE (_pos, _silo) FROM _dealt WHERE _silo = {i} ORDER BY _pos) "
                        f"TO {ql(path)} (FORMAT parquet)")
            paths.append(path)
            rows.append(con.sql(f"SELECT count(*) FROM _dealt WHERE _silo = {i}").fetchall()[0][0])
        empty = [i for i, r in enumerate(rows) if r == 0]
        if empty:
            raise ConfigError(f"silo(s) {', '.join(map(str, empty))} got no rows ({how}): use fewer silos"
                              + (" or a larger --skew" if skew is not None else ""))
    finally:
        con.close()
    silos = Silos(paths, rows, how, groups)
    logger.info("%s", silos.describe())
    return silos


def _by_column(con: Any, by: str, n: int | None) -> tuple[str, list[list[str]], str]:
    values = con.sql(f"SELECT CAST({qi(by)} AS VARCHAR) AS v, count(*) AS c FROM _rows GROUP BY 1 "
                     "ORDER BY c DESC, v NULLS LAST").fetchall()
    k = len(values) if n is None else n
    if k < 2:
        raise ConfigError(f"--by {by!r}: a federation needs at least 2 silos; the column has {len(values)} value(s)")
    if k > len(values):
        raise ConfigError(f"--silos {k} --by {by!r}: the column has only {len(values)} distinct value(s)")
    load = [0] * k
    groups: list[list[Any]] = [[] for _ in range(k)]
    for v, c in values:  # largest value first, to the silo with the fewest rows so far
        i = int(np.argmin(load))
        load[i] += c
        groups[i].append("(missing)" if v is None else v)
    cases = " ".join(f"WHEN {ql(v)} THEN {i}" for i, g in enumerate(groups) for v in g if v != "(missing)")
    missing = next((i for i, g in enumerate(groups) if "(missing)" in g), 0)
    expr = f"CASE CAST({qi(by)} AS VARCHAR) {cases} ELSE {missing} END"
    return expr, groups, f"by {by}: " + "; ".join("/".join(g) for g in groups)


def _dirichlet(con: Any, target: str, n: int, alpha: float, seed: int) -> str:
    """Per class, the rows (in hash order) cut into silos by Dirichlet(alpha) shares."""
    if n < 2:
        raise ConfigError("--skew needs --silos N (2 or more)")
    rng = np.random.default_rng(seed)
    con.execute(f"CREATE TEMP TABLE _ranked AS SELECT _pos, percent_rank() OVER (PARTITION BY {qi(target)} "
                f"ORDER BY hash(_pos, {int(seed)})) AS _u, dense_rank() OVER (ORDER BY {qi(target)}) - 1 AS _class "
                "FROM _rows")
    classes = con.sql("SELECT max(_class) + 1 FROM _ranked").fetchall()[0][0] or 0
    cases = []
    for c in range(int(classes)):
        cuts = np.cumsum(rng.dirichlet(np.full(n, alpha)))[:-1]
        silo = " ".join(f"WHEN _u < {qn(float(cut))} THEN {i}" for i, cut in enumerate(cuts))
        cases.append(f"WHEN _class = {c} THEN CASE {silo} ELSE {n - 1} END")
    con.execute(f"CREATE TEMP TABLE _skew AS SELECT _pos, CASE {' '.join(cases)} END AS _s FROM _ranked")
    return "(SELECT _s FROM _skew WHERE _skew._pos = _rows._pos)"
