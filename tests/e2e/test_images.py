"""Image columns end to end: every strategy, fused with tabular columns, bad images, predict,
ONNX export with parity, base64 serving, and the real converted MobileNetV2."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

import hone
from hone.cli import main
from hone.testing import make_image_table


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of PNG files and table.csv (photo paths relative to it, label red/blue, weight, shop)."""
    d = tmp_path_factory.mktemp("photos")
    pacsv.write_csv(make_image_table(d, 160, seed=4, with_tabular=True), d / "table.csv")
    return d


def _fast(backbone: Path, **kw) -> dict:
    return {"image_backbone": str(backbone), "epochs": 3, "batch_size": 32, "show_progress": False, "lr": 1e-3,
            "train.head_lr": 5e-3, "audit": False, "model.image_size": 32, **kw}


def _backbone_state(backbone: Path) -> dict[str, torch.Tensor]:
    from hone.models.encoders.image import load_vision_backbone

    return load_vision_backbone(backbone, pretrained=True).state_dict()


@pytest.mark.parametrize("strategy", ["full", "top-k", "frozen", "lora"])
def test_each_strategy_trains_what_it_says_saves_and_reloads(tmp_path: Path, photos: Path, tiny_cnn: Path,
                                                             tiny_vit: Path, strategy: str, monkeypatch) -> None:
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    backbone = tiny_vit if strategy == "lora" else tiny_cnn  # LoRA adapts attention projections
    pretrained = _backbone_state(backbone)
    model = hone.fit(str(photos / "table.csv"), target="label", output=tmp_path / "run", strategy=strategy, top_k=1,
                     ignore=["weight", "shop"], **_fast(backbone))
    assert model.meta["training"]["strategy"] == strategy
    assert not model.net.image.fused  # images alone enter the head as the backbone gives them
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert not any("lora" in k for k in weights)  # adapters merged: a plain network
    prefix = "encoders.image.backbone."
    saved = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
    assert saved.keys() == pretrained.keys()
    changed = {k for k in saved if not torch.equal(saved[k], pretrained[k])}
    if strategy == "frozen":
        assert not changed  # running statistics included: the backbone ran in eval mode
        assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 2  # train and validation
    elif strategy == "top-k":  # the last block and the 1x1 convolution after it
        assert changed and all(k.startswith(("layer.15.", "conv_1x1.")) for k in changed)
    elif strategy == "lora":
        assert any(".attention." in k for k in changed)
    else:
        assert any(k.startswith("conv_stem.") for k in changed)
    loaded = hone.load(tmp_path / "run" / "model")
    proba = loaded.predict_proba(str(photos / "table.csv"))
    np.testing.assert_allclose(proba, model.predict_proba(str(photos / "table.csv")), atol=1e-5)
    assert proba.shape == (160, 2) and np.allclose(proba.sum(1), 1.0)
    if strategy == "lora":  # the randomly initialised ViT learns the colour that decides the label
        assert model.metrics["network"]["macro_f1"] > 0.7


def test_frozen_embeddings_are_reused_by_image_content(tmp_path: Path, photos: Path, tiny_cnn: Path,
                                                       monkeypatch, caplog) -> None:
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    kw = {"strategy": "frozen", "ignore": ["weight", "shop"], **_fast(tiny_cnn, epochs=1)}
    hone.fit(str(photos / "table.csv"), target="label", output=tmp_path / "a", **kw)
    files = sorted((tmp_path / "cache" / "embeddings").glob("*.npy"))
    with caplog.at_level("INFO", logger="hone"):  # the CLI tests may have set hone's level
        hone.fit(str(photos / "table.csv"), target="label", output=tmp_path / "b", **kw)
    assert "reused from the cache" in caplog.text
    assert sorted((tmp_path / "cache" / "embeddings").glob("*.npy")) == files
    # the same paths with other image content: a new entry
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in photos.glob("*.png"):
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "table.csv").write_bytes((photos / "table.csv").read_bytes())
    first = pacsv.read_csv(copy / "table.csv")["photo"][0].as_py()
    (copy / first).write_bytes((copy / pacsv.read_csv(copy / "table.csv")["photo"][1].as_py()).read_bytes())
    hone.fit(str(copy / "table.csv"), target="label", output=tmp_path / "c", **kw)
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) > len(files)


def test_lora_on_a_convolutional_backbone_says_it_does_not_apply(tmp_path: Path, photos: Path, tiny_cnn: Path,
                                                                  capsys) -> None:
    code = main(["fit", str(photos / "table.csv"), "--target", "label", "--image-backbone", str(tiny_cnn),
                 "--strategy", "lora", "--no-audit", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "does not apply" in err and "convolutional" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_images_fuse_with_tabular_columns(tmp_path: Path, photos: Path, tiny_cnn: Path) -> None:
    model = hone.fit(str(photos / "table.csv"), target="label", output=tmp_path / "run", **_fast(tiny_cnn, epochs=1))
    assert list(model.net.encoders) == ["categorical", "image", "numeric"]
    assert model.net.image.fused and hone.load(tmp_path / "run" / "model").net.image.fused  # normalised in fusion
    enc = model.net.image
    x = {"photo": (5 * torch.rand(3, enc.hidden), torch.tensor([1.0, 1.0, 0.0]))}  # pooled vectors, as cached
    with torch.no_grad():
        out = model.net.image.eval()(x)
    assert torch.allclose(out[:2, :-1].norm(dim=1), torch.ones(2), atol=1e-4) and not out[2].any()
    assert set(model.pre.schema.names("image")) == {"photo"} and "weight" in model.pre.schema.names("numeric")


def test_a_missing_image_stops_the_fit_naming_row_and_file(tmp_path: Path, photos: Path, tiny_cnn: Path,
                                                           capsys) -> None:
    t = pacsv.read_csv(photos / "table.csv")
    paths = t["photo"].to_pylist()
    paths[7] = "gone.png"
    bad = t.set_column(0, "photo", pa.array([str(photos / p) for p in paths]))
    pacsv.write_csv(bad, tmp_path / "bad.csv")
    code = main(["fit", str(tmp_path / "bad.csv"), "--target", "label", "--image-backbone", str(tiny_cnn),
                 "--no-audit", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "image column 'photo'" in err and "gone.png" in err and "row " in err and "split" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def bytes_model(tmp_path_factory: pytest.TempPathFactory, tiny_cnn: Path) -> Path:
    d = tmp_path_factory.mktemp("bytes")
    pq.write_table(make_image_table(d, 160, seed=6, kind="bytes"), d / "t.parquet")
    hone.fit(str(d / "t.parquet"), target="label", output=d / "run", **_fast(tiny_cnn, epochs=2))
    return d / "run" / "model"


def test_scoring_counts_unreadable_images_and_marks_their_rows(tmp_path: Path, photos: Path, tiny_cnn: Path,
                                                               capsys) -> None:
    hone.fit(str(photos / "table.csv"), target="label", output=tmp_path / "run", ignore=["weight", "shop"],
             **_fast(tiny_cnn, epochs=1))
    t = pacsv.read_csv(photos / "table.csv").select(["photo"]).slice(0, 5)
    (photos / "not_an_image.png").write_text("hello")
    rows = pa.table({"photo": [*t["photo"].to_pylist(), "nowhere.png", "not_an_image.png", None]})
    pacsv.write_csv(rows, photos / "score.csv")
    code = main(["predict", str(tmp_path / "run" / "model"), str(photos / "score.csv"), "--output",
                 str(tmp_path / "scored.parquet")])
    err = capsys.readouterr().err
    assert code == 0 and "2 in 'photo'" in err
    out = pq.read_table(tmp_path / "scored.parquet")
    assert out.num_rows == 8 and out["missing_image_photo"].to_pylist() == [False] * 5 + [True] * 3
    assert out["prediction"].null_count == 0


def test_onnx_export_covers_the_vision_encoder(tmp_path: Path, bytes_model: Path) -> None:
    assert main(["export", str(bytes_model), "--format", "onnx"]) == 0
    record = json.loads((bytes_model / "onnx.json").read_text())
    assert record["fp32"]["max_abs_diff"] < 1e-4
    import onnx

    graph = onnx.load(str(bytes_model / "model.onnx")).graph
    assert {"image_0_pixels", "image_0_present"} <= {i.name for i in graph.input}
    assert any(n.op_type == "Conv" for n in graph.node)  # the backbone is in the graph
    data = str(bytes_model.parents[1] / "t.parquet")
    torch_out = hone.load(bytes_model).predict_proba(data)
    onnx_out = hone.load(bytes_model, runtime="onnx").predict_proba(data)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)


def test_the_service_takes_base64_images(bytes_model: Path) -> None:
    from fastapi.testclient import TestClient

    from hone.serve import create_app

    model = hone.load(bytes_model)
    data = pq.read_table(bytes_model.parents[1] / "t.parquet").slice(0, 3)
    blobs = data["photo"].to_pylist()
    expected = model.predict_proba(data)
    encoded = [base64.b64encode(b).decode() for b in blobs]
    records = [{"photo": encoded[0]}, {"photo": "data:image/png;base64," + encoded[1]}, {"photo": encoded[2]},
               {"photo": None}, {"photo": base64.b64encode(b"not an image").decode()}]
    with TestClient(create_app(model, max_body_bytes=1 << 22)) as client:
        r = client.post("/predict", json={"records": records})
        assert r.status_code == 200, r.text
        body = r.json()
        got = np.array([[p[str(c)] for c in model.classes] for p in body["probabilities"][:3]])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert body["missing_images"] == [[], [], [], ["photo"], ["photo"]]
        bad = client.post("/predict", json={"records": [{"photo": "%%%"}]})
        assert bad.status_code == 422 and "records[0].photo" in bad.text


def test_the_real_mobilenet_v2_converts_and_fine_tunes(tmp_path: Path, monkeypatch) -> None:
    """The default backbone: converted from the package, checked on china.jpg, fitted, used to predict."""
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    from transformers import MobileNetV2ForImageClassification

    from hone.models.vision_weights import PALACE, default_image_backbone, predict_palace

    folder = Path(default_image_backbone())
    assert predict_palace(MobileNetV2ForImageClassification.from_pretrained(str(folder))) == PALACE
    assert "ImageNet" in (folder / "README.md").read_text()
    d = tmp_path / "data"
    pacsv.write_csv(make_image_table(d, 120, seed=8, size=32), d / "t.csv")
    model = hone.fit(str(d / "t.csv"), target="label", output=tmp_path / "run", epochs=3, show_progress=False,
                     audit=False)
    cfg = model.meta["config"]["model"]
    assert cfg["image_backbone"] == str(folder) and cfg["image_size"] == 128  # 4 x the 32-pixel images
    assert model.metrics["network"]["macro_f1"] > 0.8  # pretrained features separate the colours at once
    assert model.predict(str(d / "t.csv")).shape == (120,)
