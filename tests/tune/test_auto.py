"""hone auto and --time-limit: the whole command within its limit, the ensemble in the model package
(saved, loaded, scored and explained like any model), --infer-limit, and greedy ensemble selection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
import hone.api
from hone.cli import main
from hone.evaluation.ensemble import greedy_selection
from hone.testing import make_table

pytest.importorskip("xgboost")
pytest.importorskip("catboost")


def noisy(n: int, seed: int) -> pa.Table:
    """make_table's rows with 15 % of the labels flipped: no model is perfect, so the candidates differ."""
    t = make_table(n, seed=seed)
    rng = np.random.default_rng(seed)
    labels = np.array(t.column("label").to_pylist())
    flip = rng.random(n) < 0.15
    labels[flip] = np.where(labels[flip] == "pos", "neg", "pos")
    return t.set_column(t.column_names.index("label"), "label", pa.array(labels.tolist()))


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> tuple[Path, float, Path]:
    root = tmp_path_factory.mktemp("auto")
    data = root / "rows.parquet"
    pq.write_table(noisy(900, 0), data)
    t0 = time.monotonic()
    assert main(["auto", str(data), "--target", "label", "--time-limit", "20", "--output", str(root / "run"),
                 "--backbone", str(tiny_backbone), "--epochs", "3", "--no-track", "--no-progress"]) == 0
    return root / "run", time.monotonic() - t0, data


def test_auto_ends_within_its_limit_with_a_leaderboard(auto_run: tuple[Path, float, Path]) -> None:
    run, wall, _ = auto_run
    assert wall <= 1.05 * 20, f"hone auto --time-limit 20 took {wall:.1f} s"
    metrics = json.loads((run / "metrics.json").read_text())
    board = metrics["leaderboard"]
    fitted = [r for r in board if r.get("status") == "fitted" and r["family"] != "network"]
    assert {r["family"] for r in fitted} >= {"lightgbm", "xgboost", "catboost", "forest", "linear"}
    assert {r["name"] for r in fitted} >= {"tfidf-linear", "tfidf-chars-linear"}  # word and character n-grams
    # the tiny network trains its 3 epochs in seconds: the time it leaves goes back to the shallow models
    cuts = metrics["budget"]["cuts"]
    assert any(c.startswith("the network left") for c in cuts), cuts
    pace = metrics["budget"]["network_strategy"]  # measured on the table's rows before the network trains
    assert pace["chosen"] == "full" and pace["seconds_per_row"]["full"] > pace["seconds_per_row"]["forward"] > 0
    assert any(r.get("repeats", 1) > 1 or r.get("fitted_after_the_network") for r in fitted)
    for r in fitted:
        assert r["fit_seconds"] >= 0 and 0 <= r["validation_macro_f1"] <= 1
    weights = [r["weight"] for r in board if "weight" in r]
    assert weights and abs(sum(weights) - 1) < 1e-3
    assert metrics["ensemble"]["scoring_rows_per_second"] > 0
    # selected again beside the trained network: the weights then are those of the members kept beside it
    beside = metrics["ensemble"]["beside_network"]
    assert 0 <= beside["network_weight"] <= 1 and beside["kept"].startswith("the ")
    assert set(metrics["stages"]) >= {"data", "baseline", "train", "choice"}
    assert metrics["budget"]["limit_seconds"] == 20 and metrics["model"]["baseline"] == "ensemble"
    assert "test" in metrics and "intervals" in metrics
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "Leaderboard (hone auto)" in page and "Time per stage" in page
    printed = hone.api.format_leaderboard(run)  # what hone auto prints before the metrics
    assert "xgboost" in printed and "stages:" in printed and "time limit 20 s" in printed


def test_the_ensemble_round_trips_and_explains_additively(auto_run: tuple[Path, float, Path]) -> None:
    run, _, data = auto_run
    model = hone.load(run / "model")
    assert model.baseline is not None and model.baseline.kind == "ensemble"
    table = pq.read_table(data).slice(0, 60)
    # the ensemble alone, as saved, scores what its members give, weighted
    base = model.baseline
    x = base._features(table)
    members = sum(w * m.scores(x, "binary") for m, w in zip(base.members, base.weights))
    np.testing.assert_allclose(base.outputs(table), members, rtol=1e-9)
    model.decision.model = "baseline"  # explain the ensemble's part exactly
    for r in model.explain(table.slice(0, 10)):
        b = r["baseline"]
        assert sum(b["columns"].values()) == pytest.approx(b["score"] - b["expected"], abs=1e-6)


def test_the_fine_tuning_strategy_is_the_one_the_time_affords() -> None:
    from hone.pipeline.budget import affordable
    from hone.pipeline.network import Pace

    pace = Pace(forward=0.001, top_k=0.0015, full=0.008, seconds=2.0)  # seconds per row
    # 4,000 training rows and 500 validation rows: one pass of full fine-tuning needs 32.5 s, three of
    # top-k 19.5 s, the frozen backbone's embeddings 5.4 s
    assert [affordable(pace, t, 4_000, 500)[0] for t in (60, 25, 12, 5)] == ["full", "top-k", "frozen", None]
    assert "full would need about 32 s" in affordable(pace, 12, 4_000, 500)[1]


def test_infer_limit_keeps_only_what_scores_fast_enough(tmp_path: Path, tiny_backbone: Path, monkeypatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from hone.pipeline import budget

    monkeypatch.setattr(budget, "PASSES", {"full": 1e6, "top-k": 1e6})  # no fine-tuning fits: the frozen backbone
    model = hone.auto(noisy(600, 1), target="label", output=tmp_path / "run", time_limit=20,
                      infer_limit=1e12, backbone=str(tiny_backbone), show_progress=False,
                      **{"tracking.enabled": False})
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    board = metrics["leaderboard"]
    assert [r for r in board if "excluded" in r and r["family"] != "network"], "no slow member was excluded"
    assert len(metrics["ensemble"]["members"]) == 1
    assert "infer-limit" in next(r for r in board if r["family"] == "network")["excluded"]
    assert model.decision.model == "baseline"  # the network is slower than the limit: not used
    chose = metrics["budget"]["network_strategy"]
    assert chose["chosen"] == "frozen" and "full would need" in chose["why"]
    assert model.meta["config"]["model"]["strategy"] == "frozen" and model.meta["config"]["train"]["epochs"] == 10
    rows = noisy(60, 5)  # the package as saved predicts what the fitted model predicted
    np.testing.assert_allclose(hone.load(tmp_path / "run" / "model").predict_proba(rows), model.predict_proba(rows),
                               rtol=0, atol=1e-12)
    capsys.readouterr()
    rc = main(["export", str(tmp_path / "run" / "model")])  # the one fast member exports, unless it is CatBoost
    err = capsys.readouterr().err.strip().splitlines()
    if rc == 0:  # the graph scores what the package scores
        onnx_p = hone.load(tmp_path / "run" / "model", runtime="onnx").predict_proba(rows)
        np.testing.assert_allclose(onnx_p, model.predict_proba(rows), atol=1e-4)
    else:  # CatBoost's export refuses the table's categorical column: one line naming it
        assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and "catboost" in err[0]


def test_the_ensemble_exports_to_onnx_and_says_which_member_cannot(auto_run: tuple[Path, float, Path],
                                                                   tmp_path: Path) -> None:
    import onnxruntime as ort

    from hone.errors import ModelDirError
    from hone.models.ensemble import Library
    from hone.onnx.baseline import baseline_graph
    from hone.onnx.graph import OPSET
    from hone.shallow.portfolio import PORTFOLIO

    run, _, _ = auto_run
    pre = hone.load(run / "model").pre
    for name, seed in (("train", 11), ("valid", 12)):
        pq.write_table(noisy(300, seed), tmp_path / f"{name}.parquet")
    lib = Library(pre, tmp_path / "train.parquet", tmp_path / "valid.parquet")
    bag = lib.fit_bagged("lightgbm", PORTFOLIO["lightgbm"][1], folds=3)
    assert bag is not None
    forest = lib.fit_forest(PORTFOLIO["forest"][1])
    assert forest is not None
    members = [bag, lib.fit_tree("xgboost", PORTFOLIO["xgboost"][0]), lib.fit_linear("word"),
               lib.fit_linear("char_wb"), forest]
    ensemble = lib.ensemble(members, [0.3, 0.3, 0.2, 0.1, 0.1], {})
    rows = noisy(50, 13)
    x = ensemble.features(rows)
    session = ort.InferenceSession(baseline_graph(ensemble, x.shape[1], OPSET).SerializeToString())
    got = session.run(["base_out"], {"baseline": x})[0]
    # 3 fold models, boosted trees, word and char n-grams, extra trees
    np.testing.assert_allclose(got, ensemble.outputs(rows), atol=1e-5)
    # CatBoost's own ONNX export refuses categorical features (the table's "store"): the error names the member
    with_catboost = lib.ensemble([members[0], lib.fit_tree("catboost", PORTFOLIO["catboost"][0])], [0.5, 0.5], {})
    with pytest.raises(ModelDirError, match=r"members without an ONNX graph: catboost .*these convert: lightgbm-xt"):
        baseline_graph(with_catboost, with_catboost.features(rows).shape[1], OPSET)


def test_the_trees_read_the_frozen_backbones_embeddings_which_the_package_carries(
        auto_run: tuple[Path, float, Path], tiny_backbone: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from hone.explain.baseline import attribute_baseline
    from hone.models.embedder import pretrained_encoder
    from hone.models.ensemble import Ensemble, Library
    from hone.onnx.baseline import baseline_graph
    from hone.onnx.graph import OPSET
    from hone.shallow.portfolio import EMBEDDED, PORTFOLIO

    run, _, _ = auto_run
    pre = hone.load(run / "model").pre
    for name, seed in (("train", 21), ("valid", 22)):
        pq.write_table(noisy(300, seed), tmp_path / f"{name}.parquet")
    lib = Library(pre, tmp_path / "train.parquet", tmp_path / "valid.parquet")
    assert pre.text is not None
    encoder = pretrained_encoder(tiny_backbone, pre.text.columns)
    assert "estimated" in (lib.embed(encoder, left=0.0) or "")  # the pilot prices the pass: no time, no embeddings
    assert lib.embedder is None
    assert lib.embed(encoder, left=60.0) is None and lib.embedder is not None and lib.x_emb is not None
    assert lib.x_emb.shape[1] == lib.x.shape[1] + lib.embedder.width
    embedded = lib.fit_tree("lightgbm", EMBEDDED["lightgbm"])
    bag = lib.fit_bagged("lightgbm", EMBEDDED["lightgbm"], folds=3)
    assert embedded.reads == "embeddings" and bag is not None and bag.reads == "embeddings"
    ensemble = lib.ensemble([embedded, bag, lib.fit_tree("lightgbm", PORTFOLIO["lightgbm"][0])], [0.4, 0.3, 0.3], {})
    rows = noisy(40, 23)
    # saved with its backbone (config and weights) and loaded: the same outputs, without the backbone's folder
    ensemble.save(tmp_path / "baseline")
    assert (tmp_path / "baseline" / "embedder" / "model.safetensors").is_file()
    again = Ensemble.load(tmp_path / "baseline", pre)
    assert again.embedder is not None
    np.testing.assert_allclose(again.outputs(rows), ensemble.outputs(rows), rtol=0, atol=1e-12)
    # ONNX: the tree members read their columns of the features (the embeddings after the rest)
    x = ensemble.features(rows)
    session = ort.InferenceSession(baseline_graph(ensemble, x.shape[1], OPSET).SerializeToString())
    np.testing.assert_allclose(session.run(["base_out"], {"baseline": x})[0], ensemble.outputs(rows), atol=1e-5)
    # the contributions of each text column's embeddings go to that column, and add up exactly
    a = attribute_baseline(again, rows.slice(0, 8), np.ones(8, dtype=np.int64))
    for i in range(8):
        assert sum(a.columns[i].values()) == pytest.approx(a.score[i] - a.expected[i], abs=1e-6)
    assert any(abs(a.columns[i].get("review", 0.0)) > 0 for i in range(8))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_forest_kept_as_arrays_scores_and_explains_as_scikit_learn_fitted_it(task: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    from hone.shallow.forest import Forest, fit_forest, forest_onnx

    rng = np.random.default_rng(7)
    x = rng.normal(size=(700, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values go below every threshold, in both runtimes
    x[3, 2], x[4, 1] = np.inf, -np.inf
    signal = np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2], posinf=3)
    y = {"binary": (signal > 0).astype(np.int64), "multiclass": np.digitize(signal, [-0.5, 0.5]),
         "regression": signal + rng.normal(scale=0.3, size=700)}[task]
    k = {"binary": 2, "multiclass": 3, "regression": 1}[task]
    forest, oob, info = fit_forest({"extra": False}, x[:500], y[:500], task, k, seed=3, threads=1, trees=60)
    assert forest is not None and info["trees"] == 60 and forest.trees == 60
    # the out-of-bag outputs are honest: worse on the training rows than the forest's own outputs there
    own = forest.predict(x[:500])
    if task == "regression":
        assert np.mean((oob - y[:500]) ** 2) > 1.5 * np.mean((own[:, 0] - y[:500]) ** 2)
    else:
        assert oob.shape == (500, k) and np.allclose(oob.sum(1), 1)
        assert np.mean(oob.argmax(1) == y[:500]) < np.mean(own.argmax(1) == y[:500])
    # the same forest, refitted by scikit-learn itself, scores what the arrays score (splits exactly alike)
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    kind = RandomForestRegressor if task == "regression" else RandomForestClassifier
    ref = kind(n_estimators=60, bootstrap=True, random_state=3, n_jobs=1, max_features=1.0 if task == "regression"
               else "sqrt", max_leaf_nodes=15_000).fit(np.nan_to_num(x[:500], nan=-1e30, posinf=1e30, neginf=-1e30),
                                                       y[:500])
    test = np.nan_to_num(x[500:], nan=-1e30, posinf=1e30, neginf=-1e30)
    want = ref.predict(test)[:, None] if task == "regression" else ref.predict_proba(test)
    np.testing.assert_allclose(forest.predict(x[500:]), want, atol=1e-6)
    # saved as arrays and loaded: the same outputs; arrays that point outside the forest are refused
    again = Forest.from_bytes(forest.to_bytes())
    np.testing.assert_array_equal(again.predict(x[500:]), forest.predict(x[500:]))
    broken = Forest.from_bytes(forest.to_bytes())
    with pytest.raises(ValueError, match="points outside"):
        Forest(broken.feature, broken.threshold, broken.left + 10**6, broken.right, broken.value, broken.roots)
    # ONNX Runtime scores the exported graph alike, missing values included
    model, out = forest_onnx(forest, task, x.shape[1], 17)
    session = ort.InferenceSession(model.SerializeToString())
    got = session.run([out], {"x": x[500:]})[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-5)
    # Saabas contributions add up to each row's output exactly
    c = forest.contributions(x[500:540])
    np.testing.assert_allclose(c.sum(2), want[:40], atol=1e-6)


def test_a_table_without_text_weighs_its_bags_on_every_out_of_fold_row(tmp_path: Path) -> None:
    t = make_table(900, seed=4, with_text=False)
    rng = np.random.default_rng(4)
    labels = np.array(t.column("label").to_pylist())
    flip = rng.random(len(labels)) < 0.15
    labels[flip] = np.where(labels[flip] == "pos", "neg", "pos")
    t = t.set_column(t.column_names.index("label"), "label", pa.array(labels.tolist()))
    model = hone.auto(t, target="label", output=tmp_path / "run", time_limit=15, families=["lightgbm"],
                      show_progress=False, **{"tracking.enabled": False})
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    on = metrics["ensemble"]["selected_on"]
    assert on.endswith("out-of-fold training and validation rows"), metrics["leaderboard"]
    rows = int(on.split()[0])
    assert rows >= 5 * metrics["validation"]["n"]  # every training and validation row, not the validation split alone
    assert all(m.endswith("-bag5") for m in metrics["ensemble"]["members"])
    # the ensemble alone (no network among the families): its temperature and threshold from those rows
    assert metrics["model"]["chosen"] == "baseline" and metrics["calibration"]["on"] == f"{rows} out-of-fold rows"
    again = hone.load(tmp_path / "run" / "model")
    assert again.decision.threshold == model.decision.threshold and again.decision.temperature == \
        model.decision.temperature
    np.testing.assert_allclose(again.predict_proba(t.slice(0, 50)), model.predict_proba(t.slice(0, 50)), atol=1e-12)


def test_auto_refuses_ray_in_one_line_and_writes_nothing(auto_run: tuple[Path, float, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, _, data = auto_run
    capsys.readouterr()
    assert main(["auto", str(data), "--target", "label", "--engine", "ray", "--output", str(tmp_path / "run"),
                 "--no-track", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--engine ray" in err[0]
    assert not (tmp_path / "run").exists()


def test_fit_time_limit_cuts_training_and_says_so(tmp_path: Path, tiny_backbone: Path) -> None:
    t0 = time.monotonic()
    model = hone.fit(noisy(900, 2), target="label", output=tmp_path / "run", time_limit=12, epochs=500, patience=500,
                     backbone=str(tiny_backbone), show_progress=False, **{"tracking.enabled": False})
    wall = time.monotonic() - t0
    assert wall <= 1.05 * 12, f"hone fit --time-limit 12 took {wall:.1f} s"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["training"]["stop_reason"].startswith("time budget")
    assert any("network training limited" in c for c in metrics["budget"]["cuts"])
    assert model.baseline is not None and model.baseline.kind == "lightgbm"  # fitted first, the default one


def test_text_statistics_count_how_a_text_is_written() -> None:
    from hone.shallow.text import STATISTICS, statistics

    s = dict(zip(STATISTICS, statistics(["GREAT deal!! http://x.co #win", "", "déjà vu 42"]).T))
    assert list(s["characters"]) == [29, 0, 10] and list(s["words"]) == [4, 0, 3]
    assert list(s["count !"]) == [2, 0, 0] and list(s["count #"]) == [1, 0, 0] and list(s["links"]) == [1, 0, 0]
    assert list(s["capital_words"]) == [1, 0, 0] and list(s["non_ascii"]) == [0, 0, 2]
    assert s["digit_share"][2] == pytest.approx(2 / 10) and s["upper_share"][0] == pytest.approx(5 / 29)


def test_greedy_selection_weights_the_better_model_and_never_a_broken_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    good = np.stack([1 - (0.3 + 0.4 * y), 0.3 + 0.4 * y], 1)
    noise = rng.random(500)
    bad = np.stack([1 - noise, noise], 1)
    broken = np.full((500, 2), np.nan)
    sel = greedy_selection("binary", "macro_f1", y, [bad, good, broken])
    assert sel.weights[1] > sel.weights[0] and sel.weights[2] == 0
    assert abs(sel.weights.sum() - 1) < 1e-12 and sel.loss <= min(sel.single[:2]) + 1e-12
