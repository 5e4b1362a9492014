"""Resolving "auto": defaults follow the strategy however it was chosen, and nothing stays auto."""

from __future__ import annotations

import pytest

from hone.config import RunConfig, build_config, resolve
from hone.errors import ConfigError


def _resolve(tree: dict, has_text: bool = True, task: str = "binary"):
    return resolve(build_config(tree), has_text=has_text, task=task, precision="fp32", threads=2)


@pytest.mark.parametrize("tree", [{"model": {"strategy": "frozen"}}, {"preset": "fast"}])
def test_frozen_defaults_whichever_way_it_is_chosen(tree: dict) -> None:
    # Regression: --strategy frozen got patience 2 (the preset's 3 applied only through --preset fast).
    r = _resolve(tree)
    assert (r.model.strategy, r.train.epochs, r.train.lr, r.train.patience) == ("frozen", 10, 1e-3, 3)


def test_other_strategies_and_explicit_values() -> None:
    assert _resolve({"model": {"strategy": "lora"}}).train.lr == 5e-4
    assert _resolve({"preset": "balanced"}).model.strategy == "top-k"
    r = _resolve({"model": {"strategy": "frozen"}, "train": {"patience": 5, "epochs": 2}})
    assert r.train.patience == 5 and r.train.epochs == 2
    tab = _resolve({"model": {"strategy": "frozen"}}, has_text=False)
    assert tab.model.strategy == "full" and tab.train.batch_size == 256 and tab.train.epochs == 10


def test_resolved_config_has_no_auto_and_reloads(tmp_path) -> None:
    r = _resolve({"data": {"target": "y"}})
    dumped = r.model_dump(mode="json")

    def autos(tree, path=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from autos(v, f"{path}{k}.")
            elif v == "auto":
                yield path + k

    # evaluate.model "auto" is replaced by the model chosen, once training has shown which it is; the
    # image settings stay auto when the table has no image column (they are not used)
    assert list(autos(dumped)) == ["model.image_backbone", "model.image_size", "evaluate.model"]
    assert RunConfig.model_validate(dumped).train.epochs == r.train.epochs
    (tmp_path / "config.json").write_text("{}")
    with_images = resolve(build_config({"data": {"target": "y"}}), has_text=False, has_image=True, task="binary",
                          precision="fp32", threads=4, image_backbone=str(tmp_path), image_size=160)
    assert list(autos(with_images.model_dump(mode="json"))) == ["model.backbone", "evaluate.model"]  # no text column
    assert (with_images.model.image_backbone, with_images.model.image_size) == (str(tmp_path), 160)
    assert with_images.model.augment.enabled and with_images.train.prefetch == 2 and with_images.train.batch_size == 32
    two_cores = resolve(build_config({"data": {"target": "y"}}), has_text=False, has_image=True, task="binary",
                        precision="fp32", threads=2, image_backbone=str(tmp_path), image_size=160)
    assert two_cores.train.prefetch == 0  # the training step already uses both cores


def test_augmentation_is_off_for_the_frozen_strategy_and_cannot_be_turned_on(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")

    def aug(tree: dict):
        r = resolve(build_config(tree), has_text=False, has_image=True, task="binary", precision="fp32", threads=2,
                    image_backbone=str(tmp_path), image_size=224)
        return r.model.augment.enabled, {c: a.enabled for c, a in r.model.augment_columns.items()}

    assert aug({"model": {"strategy": "frozen"}}) == (False, {})
    assert aug({"model": {"strategy": "top-k", "augment_columns": {"photo": {"flip": False}}}}) == (
        True,
        {"photo": True},
    )
    with pytest.raises(ConfigError, match="does not apply to the frozen strategy"):
        aug({"model": {"strategy": "frozen", "augment": {"enabled": True}}})


def test_backbone_must_be_a_local_model_folder(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        _resolve({"model": {"backbone": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match="no config.json"):
        _resolve({"model": {"backbone": str(tmp_path)}})


def test_fine_tuning_epochs_follow_the_training_rows() -> None:
    def epochs(tree: dict, rows: int | None, has_text: bool = True) -> int:
        return resolve(build_config(tree), has_text=has_text, task="binary", precision="fp32", threads=2,
                       train_rows=rows).train.epochs

    assert epochs({}, 3_200) == 4 and epochs({}, None) == 4  # a small table: the strategy's epochs
    assert epochs({}, 12_000) == 3 and epochs({}, 20_000) == 2
    assert epochs({}, 35_000) == 1 and epochs({}, 5_000_000) == 1  # never fewer than one
    assert epochs({"model": {"strategy": "lora"}}, 35_000) == 1
    assert epochs({"model": {"strategy": "frozen"}}, 35_000) == 10  # the head alone: cheap epochs
    assert epochs({}, 35_000, has_text=False) == 10
    assert epochs({"train": {"epochs": 3}}, 35_000) == 3  # an explicit value is kept


def test_backbone_dropout_auto_is_off_for_a_single_pass_only() -> None:
    def dropout(tree: dict, rows: int | None = None, has_text: bool = True):
        return resolve(build_config(tree), has_text=has_text, task="binary", precision="fp32", threads=2,
                       train_rows=rows).model.backbone_dropout

    assert dropout({}, 3_200) is None  # 4 epochs: the backbone's own dropout
    assert dropout({}, 35_000) == 0.0  # one epoch, chosen for a big table
    assert dropout({"train": {"epochs": 1}}) == 0.0 and dropout({"train": {"epochs": 2}}) is None
    assert dropout({"model": {"strategy": "frozen"}, "train": {"epochs": 1}}) is None  # the backbone never trains
    assert dropout({"train": {"epochs": 1}}, has_text=False) is None
    assert dropout({"train": {"epochs": 1}, "model": {"backbone_dropout": 0.2}}) == 0.2  # explicit wins
    assert dropout({"model": {"backbone_dropout": None}, "train": {"epochs": 1}}) is None


def test_word_embeddings_train_unless_a_single_pass() -> None:
    def words(tree: dict, rows: int | None = None) -> bool:
        return resolve(build_config(tree), has_text=True, task="binary", precision="fp32", threads=2,
                       train_rows=rows).model.train_word_embeddings

    assert words({}, 3_200) is True and words({}, 35_000) is False
    assert words({"train": {"epochs": 1}}) is False and words({"train": {"epochs": 2}}) is True
    assert words({"train": {"epochs": 1}, "model": {"train_word_embeddings": True}}) is True
