"""Every name ``hone`` exports works as documented after every submodule has been imported, twice.

Importing ``hone.scoring`` once made ``hone.predict`` the module (the bug of issue 34): no submodule
may bear an exported name."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
from hone.errors import ConfigError


def _import_everything() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(hone.__path__, "hone."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        names.append(info.name)
    return names


def test_no_submodule_shadows_an_exported_name() -> None:
    modules = _import_everything()
    assert len(modules) > 100
    clashes = [n for n in hone.__all__ if f"hone.{n}" in modules]
    assert not clashes, clashes
    for name in hone.__all__:
        assert not isinstance(getattr(hone, name), type(hone)), name


def test_every_exported_name_called_twice(tmp_path: Path, tab_table: pa.Table) -> None:
    _import_everything()
    data = tmp_path / "rows.parquet"
    pq.write_table(tab_table, data)
    quick = {"epochs": 1, "show_progress": False, "audit": False, "evaluate.explain": False,
             "tracking.enabled": False}
    called = set()
    for i in range(2):
        model = hone.fit(str(data), target="label", output=tmp_path / f"run{i}", **quick)
        assert isinstance(model, hone.Model)
        called.add("fit")
        assert isinstance(hone.load(model.run_dir / "model"), hone.Model)
        called.add("load")
        assert hone.predict(model.run_dir / "model", str(data), tmp_path / f"scored{i}.parquet") == tab_table.num_rows
        called.add("predict")
        assert hone.evaluate(model.run_dir / "model", str(data))["n"] == tab_table.num_rows
        called.add("evaluate")
        assert hone.audit(str(data), target="label").to_dict()["rows"] == tab_table.num_rows
        called.add("audit")
        assert hone.report(model.run_dir).name == "report.html"
        called.add("report")
        assert "run0" in hone.compare([tmp_path / "run0", model.run_dir])
        called.add("compare")
        assert "fp32" in hone.export(model.run_dir / "model")
        called.add("export")
        auto = hone.auto(str(data), target="label", output=tmp_path / f"auto{i}", time_limit=20,
                         families=["lightgbm", "network"], **quick)
        assert isinstance(auto, hone.Model) and auto.baseline is not None and auto.baseline.kind == "ensemble"
        called.add("auto")
        with pytest.raises(ConfigError, match="no target column"):  # the search and the federation, reached:
            hone.tune(str(data))                                      # their settings are checked first
        called.add("tune")
        with pytest.raises(ConfigError, match="no target column"):
            hone.federate(str(data))
        called.add("federate")
        assert isinstance(hone.RunConfig(), hone.RunConfig) and hone.__version__
        called |= {"RunConfig", "Model", "__version__"}
    assert called == set(hone.__all__)
