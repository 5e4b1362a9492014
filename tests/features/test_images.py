"""Image columns: schema inference, decoding, seeded augmentation, bad images, streaming, prefetch."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hone.config import ModelConfig
from hone.data.batches import prefetch
from hone.data.schema import infer_schema, is_image_bytes
from hone.data.sources import connect, open_table
from hone.errors import DataError, SchemaError
from hone.features.image import ImagePreprocessor, auto_size
from hone.features.pipeline import Preprocessor
from hone.testing import make_image_table


def _schema(source, **kw):
    return infer_schema(open_table(source, connect()), target="label", **kw)


def _pre(tbl: pa.Table, tmp: Path, backbone: Path, root: str = "", **model) -> Preprocessor:
    schema = _schema(tbl)
    pq.write_table(tbl, tmp / "train.parquet")
    cfg = ModelConfig(image_backbone=str(backbone), image_size=32, **model)
    pre = Preprocessor.fit(schema, tmp / "train.parquet", con=connect(), cfg=cfg)
    pre.bind(root)
    return pre


@pytest.mark.parametrize("kind,why", [("path", "paths to image files"), ("bytes", "encoded images"),
                                      ("pixels", "arrays of pixels")])
def test_each_kind_of_image_column_is_recognised(tmp_path: Path, kind: str, why: str) -> None:
    tbl = make_image_table(tmp_path, 40, kind=kind)
    if kind == "path":
        pacsv.write_csv(tbl, tmp_path / "t.csv")
        schema = _schema(str(tmp_path / "t.csv"))
    else:
        pq.write_table(tbl, tmp_path / "t.parquet")
        schema = _schema(str(tmp_path / "t.parquet"))
    photo = next(c for c in schema.columns if c.name == "photo")
    assert photo.role == "image" and why in photo.reason


def test_image_override_and_its_refusal(tmp_path: Path) -> None:
    tbl = make_image_table(tmp_path, 30)
    renamed = pa.table({"photo": [p.removesuffix(".png") for p in tbl["photo"].to_pylist()], "n": list(range(30)),
                        "label": tbl["label"]})  # no extension: not recognised without --image
    assert "photo" not in _schema(renamed).names("image")
    forced = _schema(renamed, overrides={"image": ["photo"]})
    assert next(c for c in forced.columns if c.name == "photo").role == "image"
    with pytest.raises(SchemaError, match="'n' has type"):
        _schema(renamed, overrides={"image": ["n"]})
    assert is_image_bytes(b"\xff\xd8\xff\xe0") and not is_image_bytes(b"PK\x03\x04")


def test_the_three_kinds_decode_to_the_same_pixels(tmp_path: Path, tiny_cnn: Path) -> None:
    arrays = {}
    for kind in ("path", "bytes", "pixels"):
        tbl = make_image_table(tmp_path / kind, 12, kind=kind, seed=3)
        pre = _pre(tbl, tmp_path / kind, tiny_cnn, root=str(tmp_path / kind))
        pixels, present = pre.modalities["image"].transform(tbl)["photo"]
        assert pixels.shape == (12, 3, 32, 32) and pixels.dtype == np.float32 and present.tolist() == [1.0] * 12
        arrays[kind] = pixels
    np.testing.assert_allclose(arrays["path"], arrays["bytes"], atol=1e-6)
    np.testing.assert_allclose(arrays["path"], arrays["pixels"], atol=1e-6)


def test_augmentation_is_seeded_per_row_and_changes_the_image(tmp_path: Path, tiny_cnn: Path) -> None:
    tbl = make_image_table(tmp_path, 8)
    pre = _pre(tbl, tmp_path, tiny_cnn, root=str(tmp_path))
    img = pre.modalities["image"]
    plain = img.transform(tbl)["photo"][0]
    a = img.transform_train(tbl, (42, 0, 3, 0))["photo"][0]
    b = img.transform_train(tbl, (42, 0, 3, 0))["photo"][0]
    c = img.transform_train(tbl, (42, 1, 3, 0))["photo"][0]
    np.testing.assert_array_equal(a, b)  # the same seed, epoch and batch: the same views
    assert not np.allclose(a, c) and not np.allclose(a, plain)
    # each operation alone is repeatable and changes the pixels
    ops = {"crop_scale": 0.5, "flip": True, "rotation": 30.0, "color_jitter": 0.5, "noise": 0.1}
    off = {"crop_scale": 1.0, "flip": False, "rotation": 0.0, "color_jitter": 0.0, "noise": 0.0}
    for op, value in ops.items():
        img.columns[0].augment = {**off, op: value, "enabled": True}
        one = img.transform_train(tbl, (1, 0, 0, 0))["photo"][0]
        np.testing.assert_array_equal(one, img.transform_train(tbl, (1, 0, 0, 0))["photo"][0])
        assert not np.allclose(one, plain), op
    img.columns[0].augment = {**off, "enabled": False}  # turned off for the column: the plain view
    np.testing.assert_array_equal(img.transform_train(tbl, (1, 0, 0, 0))["photo"][0], plain)


def test_bad_images_are_errors_when_fitting_and_counted_when_scoring(tmp_path: Path, tiny_cnn: Path) -> None:
    tbl = make_image_table(tmp_path, 6)
    pre = _pre(tbl, tmp_path, tiny_cnn, root=str(tmp_path))
    img = pre.modalities["image"]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    bad = pa.table({"photo": ["img_0_00000.png", "missing.png", "broken.png", None], "label": ["red"] * 4})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"row 2 of the train split: no such image file .*missing.png"):
        img.check(tmp_path / "bad.parquet", "train")
    img.strict = True
    with pytest.raises(DataError, match="missing.png"):
        img.transform(bad)
    img.strict = False
    img.reset_counts()
    pixels, present = img.transform(bad)["photo"]
    assert present.tolist() == [1.0, 0.0, 0.0, 0.0] and not pixels[1:].any()
    assert img.unreadable == {"photo": 2}
    assert img.missing_mask(bad, "photo").tolist() == [False, True, True, True]


def test_relative_paths_are_read_from_the_tables_folder(tmp_path: Path, tiny_cnn: Path, monkeypatch) -> None:
    tbl = make_image_table(tmp_path / "data", 10)
    pacsv.write_csv(tbl, tmp_path / "data" / "t.csv")
    monkeypatch.chdir(tmp_path)  # not the table's folder
    t = open_table("data/t.csv", connect())
    assert Path(t.base_dir).resolve() == (tmp_path / "data").resolve()
    pre = _pre(tbl, tmp_path, tiny_cnn, root=t.base_dir)
    assert pre.modalities["image"].transform(tbl)["photo"][1].sum() == 10


def test_images_are_decoded_per_sub_batch_when_scoring(tmp_path: Path, tiny_cnn: Path) -> None:
    from hone.models.build import NetSpec, build_model
    from hone.models.inference import SUB_BATCH, outputs_for

    tbl = make_image_table(tmp_path, 300, kind="bytes")
    pre = _pre(tbl, tmp_path, tiny_cnn)
    net = build_model(NetSpec(pre.encoder_specs(), 2, 16, 0.0), {"image": tiny_cnn}, pretrained=True).eval()
    seen = []
    img = pre.modalities["image"]
    original = img.transform
    img.transform = lambda b: (seen.append(b.num_rows), original(b))[1]
    out = outputs_for(net, pre, tbl, precision="fp32", device="cpu")
    assert out.shape == (300, 2) and max(seen) <= SUB_BATCH and sum(seen) == 300  # never the whole batch at once


def test_auto_size_and_preprocessing_from_the_backbone(tmp_path: Path, tiny_cnn: Path) -> None:
    assert auto_size(224, 28) == 112 and auto_size(224, 1000) == 224
    tbl = make_image_table(tmp_path, 5, kind="bytes")
    schema = _schema(tbl)
    pq.write_table(tbl, tmp_path / "train.parquet")
    img = ImagePreprocessor.fit(schema, ["photo"], tmp_path / "train.parquet", con=connect(),
                                cfg=ModelConfig(image_backbone=str(tiny_cnn)))
    assert (img.size, img.mean) == (32, [0.5, 0.5, 0.5])  # from the folder's preprocessor_config.json
    again = ImagePreprocessor.from_dict(img.to_dict(), None)
    np.testing.assert_array_equal(again.transform(tbl)["photo"][0], img.transform(tbl)["photo"][0])


def test_prefetch_keeps_order_passes_errors_and_stops() -> None:
    assert list(prefetch(iter(range(50)), 2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(failing(), 2))
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    gen = prefetch(endless(), 3)
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    gen.close()
    n = len(produced)
    import time

    time.sleep(0.3)
    assert len(produced) == n  # the background thread stopped with the consumer


def test_jpeg_bytes_decode(tmp_path: Path, tiny_cnn: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(buf, format="JPEG")
    tbl = pa.table({"photo": [buf.getvalue()] * 3, "label": ["a", "b", "a"]})
    pre = _pre(tbl, tmp_path, tiny_cnn)
    pixels, present = pre.modalities["image"].transform(tbl)["photo"]
    assert present.sum() == 3 and pixels.shape == (3, 3, 32, 32)
