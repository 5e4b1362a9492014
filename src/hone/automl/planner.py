"""The planner of ``hone auto``: within ``--time-limit`` (default 10 minutes, the whole command), fit a
portfolio of boosted trees (LightGBM, XGBoost, CatBoost), a random forest and extra trees and, with
text, TF-IDF + linear; combine them
by greedy ensemble selection on validation; give the network what they leave; keep only what scores
fast enough for ``--infer-limit``; record a leaderboard.

How the time is shared:
- the data stages (audit, split) run first and take what they take;
- the shallow stage gets a share of what is left: 35 % with a text or image column (where the
  fine-tuned network usually carries the table), 60 % without one, 90 % when the network is not a
  candidate. Its candidates run in portfolio order, the library defaults of every family first. Each
  family's first fit is its pilot: its measured seconds per boosting round price the family's other
  configurations, and a configuration that would not finish in the stage's time left is skipped (and
  the leaderboard says so). Every fit stops at the stage's deadline, keeping its best iteration;
- the network trains in what is left, minus the reserve for scoring, choice, bootstrap and report
  (:mod:`hone.pipeline.budget`);
- when the network stops early (it usually does on tables without text or images), the time it left
  goes back to the shallow models (:meth:`AutoPlanner.after_network`), down to a reserve of
  ``KEEP_SHARE`` of the limit for the stages after: the configurations skipped for time, bags of the
  configurations not yet bagged, then repeated k-fold bags (new folds, their models added to the bag)
  of the best, until the time is spent; then the selection again;
- then the choice blends the network with the ensemble on validation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hone._logging import get_logger
from hone.config import ResolvedRunConfig
from hone.features.pipeline import Preprocessor
from hone.models.baseline import Baseline
from hone.models.ensemble import Ensemble, Library, Member
from hone.pipeline.budget import RESERVE_SECONDS, TimeLimit
from hone.shallow.portfolio import EMBEDDED, PORTFOLIO, available

logger = get_logger("hone.auto")
DEFAULT_LIMIT = 600.0
SHALLOW_SHARE = {"with_network_modality": 0.35, "tabular": 0.6, "no_network": 0.9}
PILOT_ROUNDS = 20
FOLDS = 5  # k-fold bags (AutoGluon's best_quality bags with 8)
BAGS = 6  # the best configurations bagged, while time allows
BAG_MAX_ROWS = 50_000  # training + validation rows up to which bags are tried
SMALLEST = 10.0  # seconds: below this much left after the data stages, only one LightGBM is fitted
KEEP_SHARE = 0.2  # of the limit, kept after the refill for choice, bootstrap, explanation and report
REFILL_MIN = 5.0  # seconds: less than this to spend after the network, no refill
REPEATS = 4  # at most this many k-fold repeats per bag (20 models: more would slow scoring for little)


class AutoPlanner(TimeLimit):
    """The planner ``hone auto`` passes to the pipeline (see the module's docstring)."""

    def __init__(self, started: float | None = None) -> None:
        super().__init__(DEFAULT_LIMIT, started)
        self.leaderboard: list[dict[str, Any]] = []
        self.ensemble_info: dict[str, Any] = {}
        self.families: list[str] = []
        self.infer_limit: float | None = None
        self.network_excluded: str | None = None
        self.validation_outputs: np.ndarray | None = None
        self.network_speed = 0.0
        self.lib: Library | None = None
        self.cfg: ResolvedRunConfig | None = None
        self.members: list[Member] = []
        self.outputs: dict[str, np.ndarray] = {}  # each fitted candidate's validation outputs (out of fold for bags)
        self.outputs_all: dict[str, np.ndarray] = {}  # each bag's out-of-fold outputs on training + validation rows
        self.rule_rows: tuple[np.ndarray, np.ndarray] | None = None  # (targets, ensemble outputs) out of fold
        self.per_round: dict[str, float] = {}  # each tree family's pilot seconds per round

    # -- the shallow stage -------------------------------------------------------------------
    def shallow(self, pre: Preprocessor, paths: dict[str, Path], cfg: ResolvedRunConfig) -> Baseline | None:
        au = cfg.auto
        self.clock.limit = au.time_limit or DEFAULT_LIMIT
        self.infer_limit = au.infer_limit
        self.families = [f for f in au.families if f in ("linear", "network") or available(f)]
        for f in au.families:
            if f not in self.families:
                self.leaderboard.append({"name": f, "family": f, "status": "skipped",
                                         "why": f"{f} is not installed (pip install 'hone[auto]')"})
        left = self.clock.left()
        rich = any(m in pre.modalities for m in ("text", "image"))
        share = SHALLOW_SHARE["no_network" if "network" not in self.families else
                              "with_network_modality" if rich else "tabular"]
        if "network" in self.families and rich and self.pace is not None and share < SHALLOW_SHARE["no_network"]:
            share = self._share_without_network(left, share)
        small = left < SMALLEST
        if small:
            self.cuts.append(f"only {left:.0f} s left after the data stages: one LightGBM, the network "
                             "kept to a second")
            logger.warning("the time limit leaves %.0f s after the data stages: too little for more than one "
                           "LightGBM; the network only gets a second", left)
        stage_end = time.monotonic() + (left * 0.8 if small else left * share)
        lib = Library(pre, paths["train"], paths["validation"], seed=cfg.train.seed, threads=cfg.train.num_threads)
        self.lib, self.cfg = lib, cfg
        self._fit_candidates(lib, stage_end, only_first=small)
        if not self.members:
            return None
        if not small:
            self._fit_bags(lib, stage_end, cfg.train.metric, most=BAGS)
        ensemble = self._select(lib, self.members, cfg)
        lib.train_texts = None  # the training texts were only needed for the character n-grams' TF-IDF
        lib.text_tables = None  # and for the backbone's embeddings
        if lib.rows + len(lib.y_va) > BAG_MAX_ROWS:
            self.lib = None  # a big table's features are not held while the network trains: no refill after it
        return ensemble

    def _share_without_network(self, left: float, share: float) -> float:
        """The shallow stage's share when, at the pace the pilot measured, no fine-tuning strategy would fit
        in what the stage would leave: then the network is not a candidate and the trees get its time."""
        chosen, why = self.afford(self.network_seconds(left * (1 - share)))
        if chosen is not None:
            return share
        # the network is still built, kept to a step and scored on validation (twice) and test: its floor
        floor = self.pace.seconds + (2 * self.rows.get("validation", 0) + self.rows.get("test", 0)) * self.pace.forward
        share = max(share, SHALLOW_SHARE["no_network"] - floor / max(left, 1e-9))
        self.network_excluded = f"no fine-tuning strategy fits the time the shallow models would leave ({why})"
        self.cuts.append(f"network: {why}; the shallow models get {share:.0%} of the time")
        return share

    def after_network(self, prefit: Baseline | None) -> Baseline | None:
        """Spend what the network left on more shallow models (see the module's docstring), then select
        again; ``prefit`` unchanged when there is too little time or nothing new was fitted."""
        lib, cfg = self.lib, self.cfg
        if lib is None or cfg is None or prefit is None or self.clock.limit is None:
            return prefit
        spend = self.clock.left() - max(KEEP_SHARE * self.clock.limit, REFILL_MIN)
        if spend < REFILL_MIN:
            return prefit
        end = time.monotonic() + spend
        before = {m.name: len(m.trees) for m in self.members}
        logger.info("auto: the network left %.0f s: more shallow models", spend)
        self._fit_candidates(lib, end, only_first=False, again=True)
        self._fit_bags(lib, end, cfg.train.metric, most=None)
        self._repeat_bags(lib, end, cfg.train.metric)
        after = {m.name: len(m.trees) for m in self.members}
        if after == before:
            return prefit
        self.cuts.append(f"the network left {spend:.0f} s to the shallow models: "
                         f"{len(after) - len(before)} more candidates, "
                         f"{sum(after.values()) - sum(before.values())} more tree models")
        return self._select(lib, self.members, cfg)

    def beside_network(self, prefit: Baseline | None, network_validation: np.ndarray) -> Baseline | None:
        """Greedy selection again on the validation rows, the network's outputs among the candidates: the
        members kept are those that add to the network (on text, the trees on the backbone's embeddings
        can repeat what the network knows, where TF-IDF models add to it). The ensemble is those members,
        their weights renormalised; the choice then blends it with the network as before. Not on tables
        whose ensemble was weighed on every out-of-fold row (the network has no out-of-fold outputs),
        with ``--infer-limit`` (the ensemble was chosen for its speed), or when the network is not a
        candidate."""
        from hone.evaluation.ensemble import greedy_selection

        lib, cfg = self.lib, self.cfg
        if (lib is None or cfg is None or prefit is None or self.rule_rows is not None or self.infer_limit is not None
                or self.network_excluded is not None or not self.members
                or network_validation.shape != self.outputs[self.members[0].name].shape):
            return prefit
        task, metric, y = lib.task, cfg.train.metric, lib.y_va_target
        members = self.members
        sel = greedy_selection(task, metric, y, [*(self.outputs[m.name] for m in members), network_validation],
                               rounds=cfg.auto.ensemble_rounds)
        share = float(sel.weights[-1])
        if share <= 0 or share >= 1:  # the network adds nothing to the ensemble, or the ensemble nothing to it
            self.ensemble_info["beside_network"] = {"network_weight": round(share, 4),
                                                    "kept": "the ensemble as selected"}
            return prefit
        chosen = [m for m, w in zip(members, sel.weights[:-1]) if w > 0]
        weights = [float(w) / (1 - share) for w in sel.weights[:-1] if w > 0]
        ensemble = lib.ensemble(chosen, weights, {"selection": {**prefit.info.get("selection", {}),
                                                                "with_network": round(share, 4)}})
        for r in self.leaderboard:
            r.pop("weight", None)
        for m, w in zip(chosen, weights):
            _board_row(self.leaderboard, m.name)["weight"] = round(w, 4)
        self.validation_outputs = np.sum([w * self.outputs[m.name] for m, w in zip(chosen, weights)], axis=0)
        speed = _speed(lib, chosen, {m.name: _scoring_seconds(lib, m) for m in chosen})
        self.ensemble_info.update(members=[m.name for m in chosen], weights=[round(w, 4) for w in weights],
                                  scoring_rows_per_second=round(speed, 1),
                                  beside_network={"network_weight": round(share, 4),
                                                  "selection_loss": round(sel.loss, 6),
                                                  "kept": "the members selected beside the network"})
        logger.info("auto: selected beside the network (weight %.2f): %s", share,
                    ", ".join(f"{m.name} {w:.2f}" for m, w in zip(chosen, weights)))
        return ensemble

    def _ranked(self, lib: Library, metric: str, members: list[Member]) -> list[Member]:
        from hone.evaluation.ensemble import selection_loss

        return sorted(members, key=lambda m: selection_loss(lib.task, metric, lib.y_va_target, self.outputs[m.name]))

    def _fit_bags(self, lib: Library, stage_end: float, metric: str, *, most: int | None) -> None:
        """k-fold bags of the best tree configurations not yet bagged, while there is time for them: every
        training and validation row trains 4 of the 5 fold models and is predicted by the fifth."""
        rows = lib.rows + len(lib.y_va)
        if rows > BAG_MAX_ROWS:
            if not any(r["name"] == "k-fold bags" for r in self.leaderboard):
                self.leaderboard.append({"name": "k-fold bags", "family": "bag", "status": "skipped",
                                         "why": f"{rows:,} rows: bags only up to {BAG_MAX_ROWS:,}"})
            return
        names = {m.name for m in self.members}
        singles = [m for m in self.members if m.family not in ("linear", "forest") and not m.bag
                   and f"{m.name}-bag{FOLDS}" not in names]  # a forest's out-of-bag outputs are out of fold
        for m in self._ranked(lib, metric, singles)[:most]:
            config = _config(m.family, m.name)
            need = FOLDS * m.info["fit_seconds"] * rows / max(lib.rows, 1)
            left = stage_end - time.monotonic()
            row: dict[str, Any] = {"name": f"{m.name}-bag{FOLDS}", "family": m.family,
                                   "estimated_seconds": round(need, 2)}
            if need > left:
                self._skipped(row, f"estimated {need:.1f} s, {left:.1f} s left in the shallow stage")
                continue
            bag = lib.fit_bagged(m.family, config, folds=FOLDS, deadline=stage_end)
            if bag is None:
                self._skipped(row, "the deadline came before its last fold")
                continue
            self._fitted(lib, bag, row)

    def _repeat_bags(self, lib: Library, end: float, metric: str) -> None:
        """More k-fold repeats of the bags, best first, round after round while the time lasts: each repeat
        draws new folds; its models join the bag and its out-of-fold outputs are averaged in."""
        bags = self._ranked(lib, metric, [m for m in self.members if m.bag])[:BAGS]
        for repeat in range(1, REPEATS):
            fitted = False
            for m in bags:
                if m.info.get("repeats", 1) != repeat:
                    continue
                config = _config(m.family, m.name.rsplit("-bag", 1)[0])
                need = m.info["fit_seconds"] / repeat
                if need > end - time.monotonic():
                    continue
                more = lib.fit_bagged(m.family, config, folds=FOLDS, deadline=end, repeat=repeat)
                if more is None:
                    return
                oof, every = lib.validation_scores(more), lib.all_scores(more)
                self.outputs[m.name] = (self.outputs[m.name] * repeat + oof) / (repeat + 1)
                if every is not None and m.name in self.outputs_all:
                    self.outputs_all[m.name] = (self.outputs_all[m.name] * repeat + every) / (repeat + 1)
                m.bag += more.bag
                m.info["repeats"] = repeat + 1
                m.info["fit_seconds"] = round(m.info["fit_seconds"] + more.info["fit_seconds"], 3)
                m.info["best_iteration"] = [*m.info["best_iteration"], *more.info["best_iteration"]]
                _board_row(self.leaderboard, m.name).update(repeats=repeat + 1, fit_seconds=m.info["fit_seconds"],
                                                            best_iteration=m.info["best_iteration"])
                fitted = True
            if not fitted:
                return

    def _skipped(self, row: dict[str, Any], why: str) -> None:
        """A leaderboard row for a candidate not fitted (one per name: a later try replaces it)."""
        self.leaderboard[:] = [r for r in self.leaderboard
                               if not (r["name"] == row["name"] and r["status"] == "skipped")]
        self.leaderboard.append({**row, "status": "skipped", "why": why})

    def _fitted(self, lib: Library, m: Member, row: dict[str, Any]) -> Member:
        """Record a fitted candidate: its validation outputs (kept for the selection) and its leaderboard row
        (replacing the row that said it was skipped, if an earlier try did)."""
        self.outputs[m.name] = lib.validation_scores(m)
        every = lib.all_scores(m)
        if every is not None:
            self.outputs_all[m.name] = every
        self.members.append(m)
        self.leaderboard[:] = [r for r in self.leaderboard if r["name"] != m.name]
        self.leaderboard.append({**row, "status": "fitted", **m.info})
        logger.info("auto: %s fitted in %.1f s", m.name, m.info["fit_seconds"])
        return m

    def _queue(self, lib: Library) -> list[tuple[str, dict[str, Any]]]:
        """Candidates in the order they are fitted: each boosting family's default, the linear members,
        the random forest, the boosting families' second configurations, the extra trees, then the rest."""
        trees = [f for f in ("lightgbm", "xgboost", "catboost") if f in self.families]
        forests = PORTFOLIO["forest"] if "forest" in self.families else []
        queue: list[tuple[str, dict[str, Any]]] = [(f, PORTFOLIO[f][0]) for f in trees]
        if "linear" in self.families and lib.text is not None:
            queue.append(("linear", {"name": "tfidf-linear", "analyzer": "word"}))
            queue.append(("linear", {"name": "tfidf-chars-linear", "analyzer": "char_wb"}))
        if trees and lib.text is not None and self._backbone() is not None:
            queue.append((trees[0], EMBEDDED[trees[0]]))
        depth = max((len(PORTFOLIO[f]) for f in trees), default=0)
        for i in range(1, max(depth, 1 + len(forests))):
            if i - 1 < len(forests):
                queue.append(("forest", forests[i - 1]))
            queue += [(f, PORTFOLIO[f][i]) for f in trees if i < len(PORTFOLIO[f])]
        return queue

    def _fit_candidates(self, lib: Library, stage_end: float, *, only_first: bool, again: bool = False) -> None:
        """The queue's candidates (``again``: those not fitted yet), each priced first where it can be."""
        per_round = self.per_round
        members = self.members
        done = {m.name for m in members}
        for family, config in self._queue(lib)[:1] if only_first else self._queue(lib):
            if config["name"] in done:
                continue
            left = stage_end - time.monotonic()
            row: dict[str, Any] = {"name": config["name"], "family": family}
            if left <= 0.5:
                self._skipped(row, "the shallow stage's time was spent")
                continue
            if family == "linear":
                if config["analyzer"] == "char_wb" and lib.char_vocabulary is None and lib.train_texts is None:
                    self._skipped(row, "only fitted before the network (its TF-IDF reads the training texts)")
                    continue
                word = next((m for m in members if m.name == "tfidf-linear"), None)
                if config["analyzer"] == "char_wb" and word is not None:
                    # character n-grams: about 4 times the word model's vocabulary, and its own TF-IDF
                    need = 4 * (word.info["fit_seconds"] + lib.seconds)
                    row["estimated_seconds"] = round(need, 2)
                    if need > left:
                        self._skipped(row, f"estimated {need:.1f} s, {left:.1f} s left in the shallow stage")
                        continue
                m = lib.fit_linear(config["analyzer"])
            elif config.get("embedded") and lib.embedder is None and not self._embed(lib, row, stage_end):
                continue
            elif family == "forest":
                forest = self._forest(lib, config, row, stage_end)
                if forest is None:
                    continue
                m = forest
            else:
                if family not in per_round:  # the pilot: a few rounds price this family on this table
                    t0 = time.perf_counter()
                    lib.fit_tree(family, config, deadline=stage_end, max_rounds=PILOT_ROUNDS)
                    per_round[family] = (time.perf_counter() - t0) / PILOT_ROUNDS
                    row["pilot_seconds_per_round"] = round(per_round[family], 5)
                need = per_round[family] * _rounds(config) * _complexity(config)
                row["estimated_seconds"] = round(need, 2)
                if need > stage_end - time.monotonic() and members:
                    self._skipped(row, f"estimated {need:.1f} s, {stage_end - time.monotonic():.1f} s left in the "
                                       "shallow stage")
                    continue
                m = lib.fit_tree(family, config, deadline=stage_end)
            if again:
                row["fitted_after_the_network"] = True
            self._fitted(lib, m, row)

    def _backbone(self) -> str | None:
        """The text backbone's folder, when there is one to embed the texts with."""
        backbone = self.cfg.model.backbone if self.cfg is not None else None
        return str(backbone) if backbone else None

    def _embed(self, lib: Library, row: dict[str, Any], stage_end: float) -> bool:
        """The frozen backbone's embeddings for the trees, when a pilot says they fit in half of the stage's
        time left (the trees on them need the rest); False (and the leaderboard says why) when not."""
        if lib.text_tables is None:
            self._skipped(row, "only fitted before the network (the embeddings read the training texts)")
            return False
        from hone.models.embedder import pretrained_encoder

        backbone = self._backbone()
        assert backbone is not None and lib.pre.text is not None
        t0 = time.perf_counter()
        why = lib.embed(pretrained_encoder(backbone, lib.pre.text.columns),
                        left=(stage_end - time.monotonic()) / 2)
        if why is not None:
            self._skipped(row, why)
            lib.text_tables = None  # not tried again after the network
            return False
        self.cuts.append(f"the trees also read the frozen backbone's embeddings of the texts "
                         f"({time.perf_counter() - t0:.1f} s to make)")
        return True

    def _forest(self, lib: Library, config: dict[str, Any], row: dict[str, Any], stage_end: float) -> Member | None:
        """A random forest or extra trees, on tables up to ``BAG_MAX_ROWS`` rows; the first forest's seconds
        price the second. None (and the leaderboard says why) when skipped."""
        rows = lib.rows + len(lib.y_va)
        if rows > BAG_MAX_ROWS:
            self._skipped(row, f"{rows:,} rows: forests only up to {BAG_MAX_ROWS:,} (their trees grow with the rows)")
            return None
        prior = next((m for m in self.members if m.family == "forest"), None)
        left = stage_end - time.monotonic()
        if prior is not None:
            need = prior.info["fit_seconds"]
            row["estimated_seconds"] = round(need, 2)
            if need > left:
                self._skipped(row, f"estimated {need:.1f} s, {left:.1f} s left in the shallow stage")
                return None
        m = lib.fit_forest(config, deadline=stage_end)
        if m is None:
            self._skipped(row, "the deadline came before its first 50 trees")
        return m

    def _select(self, lib: Library, members: list[Member], cfg: ResolvedRunConfig) -> Ensemble:
        from hone.evaluation.ensemble import greedy_selection, selection_loss

        task, metric, y = lib.task, cfg.train.metric, lib.y_va_target
        outs = [self.outputs[m.name] for m in members]
        for r in self.leaderboard:  # a selection again (after the network) starts afresh
            r.pop("weight", None)
            r.pop("excluded", None)
        for m, o in zip(members, outs):
            _board_row(self.leaderboard, m.name)["validation_loss"] = round(selection_loss(task, metric, y, o), 6)
            _board_row(self.leaderboard, m.name)["validation_" + metric] = _metric_value(task, metric, y, o)
        seconds = {m.name: _scoring_seconds(lib, m) for m in members}  # each member's, measured once

        def speed_of(chosen: list[Member]) -> float:
            return _speed(lib, chosen, seconds)

        alone = {m.name: speed_of([m]) for m in members}
        keep = list(range(len(members)))
        if self.infer_limit is not None:
            fast = [i for i in keep if alone[members[i].name] >= self.infer_limit]
            for i in keep:
                if i not in fast:
                    _board_row(self.leaderboard, members[i].name)["excluded"] = (
                        f"--infer-limit {self.infer_limit:g} rows/s: it scores {alone[members[i].name]:.0f} rows/s")
            if not fast:
                best = max(keep, key=lambda i: alone[members[i].name])
                self.cuts.append(f"no model reaches --infer-limit {self.infer_limit:g} rows/s: kept the fastest, "
                                 f"{members[best].name} ({alone[members[best].name]:.0f} rows/s)")
                _board_row(self.leaderboard, members[best].name).pop("excluded", None)
                fast = [best]
            keep = fast
        # On a table without text, where the bags are the candidates worth having, they are weighted on their
        # out-of-fold outputs over every training and validation row (as AutoGluon's bagged ensembles are),
        # several times the validation rows alone; with text, the linear members (fitted once) take part.
        # Not when a candidate never bagged beats every bag on validation (a fitted-once model's validation
        # loss flatters it: it early-stopped on those rows; its bag, where there is one, stands for it).
        bagged = [i for i in keep if members[i].name in self.outputs_all]
        names = {members[i].name for i in bagged}
        loss = {i: selection_loss(task, metric, y, outs[i]) for i in keep}
        best_bag = min((loss[i] for i in bagged), default=np.inf)
        on_all = bool(bagged) and lib.text is None and not any(
            loss[i] < best_bag for i in keep if i not in bagged and f"{members[i].name}-bag{FOLDS}" not in names)
        if on_all:
            keep, y, outs = bagged, lib.y_all_target, [self.outputs_all.get(m.name, o) for m, o in zip(members, outs)]
        while True:
            sel = greedy_selection(task, metric, y, [outs[i] for i in keep], rounds=cfg.auto.ensemble_rounds)
            chosen = [members[i] for i, w in zip(keep, sel.weights) if w > 0]
            weights = [float(w) for w in sel.weights if w > 0]
            speed = speed_of(chosen)
            if self.infer_limit is None or speed >= self.infer_limit or len(chosen) == 1:
                break
            slowest = min(chosen, key=lambda m: alone[m.name])
            _board_row(self.leaderboard, slowest.name)["excluded"] = (
                f"--infer-limit {self.infer_limit:g} rows/s: the ensemble scored {speed:.0f} rows/s with it")
            keep = [i for i in keep if members[i].name != slowest.name]
        ensemble = lib.ensemble(chosen, weights, {"selection": {"loss": round(sel.loss, 6), "rounds": sel.rounds,
                                                                "by": "log loss" if task != "regression"
                                                                else "squared error", "rows": len(y),
                                                                "on": "out-of-fold training and validation rows"
                                                                if on_all else "validation rows"}})
        for m, w in zip(chosen, weights):
            _board_row(self.leaderboard, m.name)["weight"] = round(w, 4)
        for name, v in alone.items():
            _board_row(self.leaderboard, name)["scoring_rows_per_second"] = round(v, 1)
        self.validation_outputs = np.sum([w * self.outputs[m.name] for m, w in zip(chosen, weights)], axis=0)
        self.rule_rows = (y, np.sum([w * self.outputs_all[m.name] for m, w in zip(chosen, weights)], axis=0)) \
            if on_all else None
        self.ensemble_info = {"members": [m.name for m in chosen], "weights": [round(w, 4) for w in weights],
                              "selection_loss": round(sel.loss, 6), "selected_on": f"{len(y)} "
                              + ("out-of-fold training and validation rows" if on_all else "validation rows"),
                              "scoring_rows_per_second": round(speed, 1)}
        if self.infer_limit is not None and speed < self.infer_limit:
            self.cuts.append(f"no ensemble reaches --infer-limit {self.infer_limit:g} rows/s: the fastest kept "
                             f"scores {speed:.0f} rows/s")
        logger.info("auto: ensemble of %s (validation loss %.4f, %.0f rows/s)",
                    ", ".join(f"{m.name} {w:.2f}" for m, w in zip(chosen, weights)), sel.loss, speed)
        return ensemble

    def baseline_rule_rows(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self.rule_rows

    def baseline_validation(self) -> np.ndarray | None:
        return self.validation_outputs

    def explanation(self, rows: int, examples: int) -> tuple[int, int] | None:
        """As with ``--time-limit``, and its rows fitted to the time left: permutation importance scores
        the validation rows once per column and shuffle, at the ensemble's measured speed."""
        sizes = super().explanation(rows, examples)
        speed = self.ensemble_info.get("scoring_rows_per_second")
        if sizes is None or self.lib is None or not speed:
            return sizes
        from hone.explain.importance import REPEATS

        n = min(sizes[0], len(self.lib.y_va))
        columns = len(self.lib.pre.schema.names())
        need = (columns * REPEATS + 1) * n / speed
        have = self.clock.left() - RESERVE_SECONDS  # the report and the run files after it
        if need <= have:
            return sizes
        fit = int(n * max(have, 0.0) / need)
        if fit < 100:
            self.cuts.append(f"explanation skipped: {columns} columns at {speed:.0f} rows/s would take about "
                             f"{need:.0f} s, {self.clock.left():.0f} s were left")
            return None
        self.cuts.append(f"explanation on {fit} validation rows of {n} (about {need:.0f} s for all, "
                         f"{self.clock.left():.0f} s were left)")
        return fit, sizes[1]

    # -- the network and the choice ----------------------------------------------------------
    network_optional = True

    def strategy(self, cfg: ResolvedRunConfig, pre: Preprocessor, paths: dict[str, Path]) -> str | None:
        if "network" not in self.families or self.clock.left() < SMALLEST or self.network_excluded is not None:
            return cfg.model.strategy  # no network to plan (network() says why)
        chosen = super().strategy(cfg, pre, paths)
        if chosen is None:
            self.network_excluded = "no fine-tuning strategy fits the time left (budget.network_strategy)"
        return chosen

    def network(self, cfg: ResolvedRunConfig) -> ResolvedRunConfig:
        if self.network_excluded is None and "network" not in self.families:
            self.network_excluded = "not among --families"
        elif self.network_excluded is None and self.clock.left() < SMALLEST:
            self.network_excluded = "no time left for it"
            self.cuts.append("network: no time left for it (kept to a second, not chosen)")
        if self.network_excluded is None:
            return super().network(cfg)
        # not a candidate: the pipeline still builds it, kept to a second
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"time_budget": 1.0, "epochs": 1})})

    def requested_model(self, requested: str, network_rows_per_second: float) -> str:
        self.network_speed = network_rows_per_second
        if self.network_excluded is not None:
            return "baseline"
        if self.infer_limit is not None and network_rows_per_second < self.infer_limit:
            self.network_excluded = (f"--infer-limit {self.infer_limit:g} rows/s: the network scored "
                                     f"{network_rows_per_second:.0f} rows/s")
            return "baseline"
        return requested

    def record(self) -> dict[str, Any]:
        out = super().record()
        network = {"name": "network", "family": "network",
                   "scoring_rows_per_second": round(self.network_speed, 1)}
        if self.strategy_record.get("chosen"):
            network["strategy"] = self.strategy_record["chosen"]
        if self.network_excluded:
            network["excluded"] = self.network_excluded
        out["leaderboard"] = [*self.leaderboard, network]
        out["ensemble"] = self.ensemble_info
        return out


def _config(family: str, name: str) -> dict[str, Any]:
    """The portfolio configuration called ``name`` (the embedded variants included)."""
    return next(c for c in [*PORTFOLIO[family], EMBEDDED.get(family, {})] if c.get("name") == name)


def _rounds(config: dict[str, Any]) -> float:
    """Boosting rounds a configuration is expected to run before early stopping (slower rates, more rounds)."""
    lr = config["params"].get("learning_rate", 0.1)
    return min(2000.0, 150.0 * 0.1 / lr)


def _complexity(config: dict[str, Any]) -> float:
    """Cost per round relative to the family's defaults (more leaves or depth, more work)."""
    p = config["params"]
    return max(1.0, p.get("num_leaves", 31) / 31) * max(1.0, 2.0 ** (p.get("max_depth", p.get("depth", 6)) - 6))


def _board_row(board: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in board if r["name"] == name and r.get("status") == "fitted")


def _metric_value(task: str, metric: str, y: np.ndarray, out: np.ndarray) -> float:
    from hone.evaluation.choice import Decision, validation_score

    return round(float(validation_score(task, metric, y, Decision(model="baseline"), out)), 6)


def _speed(lib: Library, chosen: list[Member], seconds: dict[str, float]) -> float:
    """Rows/s of scoring with ``chosen`` (each member's measured ``seconds`` on the validation rows), the
    features they read included: the TF-IDF, the character n-grams, the backbone's embeddings."""
    chars = lib.char_feature_seconds if any(m.reads == "char_wb" for m in chosen) else 0.0
    emb = lib.embedding_seconds if any(m.reads == "embeddings" for m in chosen) else 0.0
    return lib.y_va.size / max(sum(seconds[m.name] for m in chosen) + lib.feature_seconds + chars + emb, 1e-9)


def _scoring_seconds(lib: Library, m: Member) -> float:
    """Seconds ``m`` takes to score the validation rows from their features."""
    t0 = time.perf_counter()
    m.scores(lib.valid_parts, lib.task)
    return time.perf_counter() - t0
