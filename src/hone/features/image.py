"""Image columns: decoded, resized and normalised per batch, with seeded augmentation for training.

A column holds paths to image files (relative to the table's folder, or absolute), encoded images
(PNG/JPEG/... bytes) or arrays of pixels (``[H*W]``, ``[H*W*3]``, ``[H][W]`` or ``[H][W][C]``). Each
batch is decoded when it is needed and dropped after, so a table of a million paths never holds
its images in memory. Decoding and augmentation run on a thread pool (Pillow and NumPy release the
GIL), and the training feeder runs whole batches ahead of the training step (hone.models.feeding).

A missing value is a missing image: zeros and a ``present`` flag of 0, which the encoder sees. An
unreadable image (no such file, not an image) is an error naming the file and the row while a model
is fitted (``strict``), and a missing image, counted in ``unreadable``, while one scores.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hone.config import ModelConfig
from hone.data.schema import Schema, pixel_array_type
from hone.data.sql import parquet, qi
from hone.errors import DataError, MissingDependencyError, ModelDirError
from hone.features.base import FeaturePreprocessor, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1)), thread_name_prefix="hone-images")
    return _POOL


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow comes with transformers' vision extras
        raise MissingDependencyError("image columns need Pillow: pip install pillow") from err
    return Image


class UnreadableImage(Exception):
    """An image value that cannot be decoded; ``what`` says which and why."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def backbone_preprocessing(folder: str | Path) -> dict[str, Any]:
    """Input side, resize side, mean and std from a Hugging Face vision folder's preprocessor config.

    The resize side keeps the folder's resize-to-crop ratio (256 -> 224 for ImageNet CNNs); a
    folder without ``preprocessor_config.json`` gets 224 and the ImageNet statistics.
    """
    path = Path(folder) / "preprocessor_config.json"
    d = json.loads(path.read_text()) if path.is_file() else {}

    def side(v: Any, default: int) -> int:
        if isinstance(v, dict):
            v = v.get("shortest_edge") or v.get("height") or v.get("width")
        return int(v) if v else default

    crop = side(d.get("crop_size"), 0) if d.get("do_center_crop", "crop_size" in d) else 0
    size = side(d.get("size"), 224)
    crop = crop or size
    return {"size": crop, "resize": max(size, crop), "mean": list(d.get("image_mean") or IMAGENET_MEAN),
            "std": list(d.get("image_std") or IMAGENET_STD)}


def auto_size(backbone_side: int, image_side: float | None) -> int:
    """``model.image_size: auto``: the backbone's side, or for small images 4 times their median
    side (at least 64, a multiple of 16) when that is smaller. 28-pixel images train at 112 px, 8.4
    times faster than at 224 with MobileNetV2 on a 2-core CPU (bench/results/images_sizes.txt), and
    upscaling them further adds no detail.

    Example:
        >>> auto_size(224, 28), auto_size(224, 500), auto_size(224, 8), auto_size(224, None)
        (112, 224, 64, 224)
    """
    if not image_side:
        return backbone_side
    return min(backbone_side, max(64, 16 * math.ceil(4 * image_side / 16)))


def image_path(value: Any, root: str) -> Path:
    """A path value of an image column: ``~`` expanded, relative ones under ``root`` (the table's folder)."""
    path = Path(os.path.expanduser(str(value).strip()))
    return Path(root) / path if root and not path.is_absolute() else path


def pixel_side(value: Any) -> float | None:
    """The side of an array of pixels: its first dimension, or for a flat array the side of the
    square grey or colour image it holds."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim >= 2:
        return float(arr.shape[0])
    for c in (1, 3):
        side = math.isqrt(arr.size // c)
        if arr.size and arr.size % c == 0 and side * side * c == arr.size:
            return float(side)
    return None


def median_side(values: list[Any], kind: str, root: str, shape: list[int] | None = None) -> float | None:
    """The median shorter side of a sample of a column's images (headers only), or None."""
    if kind == "pixels":
        return float(min(shape[:2])) if shape else None
    Image = _pil()
    sides = []
    for v in values:
        try:
            if isinstance(v, (bytes, bytearray, memoryview)):
                with Image.open(io.BytesIO(bytes(v))) as img:
                    sides.append(min(img.size))
            elif v is not None:
                with Image.open(image_path(v, root)) as img:
                    sides.append(min(img.size))
        except (OSError, ValueError, SyntaxError):
            continue
    return float(np.median(sides)) if sides else None


@dataclass
class ImageColumn:
    """How one column's values become images: ``kind`` is path, bytes or pixels; for pixels, the
    ``shape`` ``[H, W, C]`` and the ``scale`` (255 for 0-255 values, 1 for 0-1)."""

    name: str
    kind: str
    shape: list[int] = field(default_factory=list)
    scale: float = 255.0
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields; enabled False = none


@register
@dataclass
class ImagePreprocessor(FeaturePreprocessor):
    """``batch -> {column: (pixels float32 [B, 3, S, S], present float32 [B])}``."""

    modality: ClassVar[str] = "image"
    roles: ClassVar[tuple[str, ...]] = ("image",)
    columns: list[ImageColumn]
    size: int
    resize: int
    mean: list[float]
    std: list[float]
    fused: bool = False  # other kinds of columns share the network's head (the encoder normalises then)
    root: str = ""  # runtime: the folder relative paths are read from (the table's)
    strict: bool = False  # runtime: unreadable images raise (fit) instead of being counted (scoring)
    unreadable: dict[str, int] = field(default_factory=dict)  # runtime: per column, since the last reset
    failed: set[Any] = field(default_factory=set)  # runtime: keys of the values that did not decode (scoring)

    @classmethod
    def fit(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
            cfg: ModelConfig) -> ImagePreprocessor:
        return cls._build(schema, columns, cfg, cls._layouts(schema, columns, train_path, con))

    @classmethod
    def _layouts(cls, schema: Schema, columns: list[str], train_path: Path, con: duckdb.DuckDBPyConnection
                 ) -> dict[str, tuple[list[int], float]]:
        dtypes = {c.name: c.dtype.upper() for c in schema.columns}
        return {n: _pixel_layout(con, train_path, n, dtypes[n]) for n in columns if pixel_array_type(dtypes[n])}

    @classmethod
    def local_stats(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
                    cfg: ModelConfig) -> dict[str, Any]:
        """Pixel-array columns: their ``[H, W, C]`` shape and value scale (no pixel leaves the silo)."""
        return {"pixels": {n: {"shape": shape, "scale": scale}
                           for n, (shape, scale) in cls._layouts(schema, columns, train_path, con).items()}}

    @classmethod
    def from_stats(cls, schema: Schema, columns: list[str], stats: list[dict[str, Any]], *,
                   cfg: ModelConfig) -> ImagePreprocessor:
        layouts: dict[str, tuple[list[int], float]] = {}
        for s in stats:
            for n, d in s.get("pixels", {}).items():
                shape = [int(v) for v in d["shape"]]
                if n in layouts and layouts[n][0] != shape:
                    raise DataError(f"image column {n!r} holds {layouts[n][0]} pixel arrays in one silo and {shape} in "
                                    "another: every silo must store images of one shape")
                layouts[n] = (shape, max(float(d["scale"]), layouts.get(n, (shape, 0.0))[1]))
        return cls._build(schema, columns, cfg, layouts)

    @classmethod
    def _build(cls, schema: Schema, columns: list[str], cfg: ModelConfig,
               layouts: dict[str, tuple[list[int], float]]) -> ImagePreprocessor:
        prep = backbone_preprocessing(cfg.image_backbone)
        size = int(cfg.image_size) if cfg.image_size != "auto" else prep["size"]
        resize = max(size, round(size * prep["resize"] / prep["size"]))
        dtypes = {c.name: c.dtype for c in schema.columns}
        cols = []
        for name in columns:
            dtype = dtypes[name].upper()
            aug = cfg.augment_columns.get(name, cfg.augment).model_dump()
            if name in layouts:
                shape, scale = layouts[name]
                cols.append(ImageColumn(name, "pixels", shape, scale, aug))
            else:
                cols.append(ImageColumn(name, "bytes" if dtype == "BLOB" else "path", augment=aug))
        fused = any(c.role != "image" for c in schema.columns)
        return cls(cols, size, resize, [float(x) for x in prep["mean"]], [float(x) for x in prep["std"]], fused)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def bind(self, root: str) -> None:
        self.root = root

    def check(self, path: Path, split: str) -> None:
        """Every image of a split file can be opened (files exist, headers parse): the first that
        cannot is an error naming its row in the split and its value."""
        for col in self.columns:
            if col.kind == "pixels":
                continue
            start = 0
            for b in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=[col.name]):
                values = b.column(0).to_pylist()
                heads = list(_pool().map(lambda v, col=col: self._probe(col, v), values))
                for i, problem in enumerate(heads):
                    if problem:
                        raise DataError(f"image column {col.name!r}, row {start + i + 1} of the {split} split: "
                                        f"{problem}")
                start += len(values)

    def _probe(self, col: ImageColumn, value: Any) -> str | None:
        if value is None:
            return None
        try:
            with self._open(col, value) as img:
                img.size  # noqa: B018  (the header was parsed)
        except UnreadableImage as err:
            return err.what
        return None

    def transform(self, batch: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.encode(batch)

    def transform_train(self, batch: pa.Table, key: tuple[int, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.encode(batch, key)

    def encode(self, batch: pa.Table, key: tuple[int, ...] | None = None, only: str | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Pixels ``[B, 3, S, S]`` (normalised) and presence ``[B]`` per column (``only``: one column);
        ``key`` (seed, epoch, batch) turns on each column's augmentation, seeded per row."""
        out = {}
        for ci, col in enumerate(self.columns):
            if only is not None and col.name != only:
                continue
            values = batch.column(col.name).to_pylist()
            aug = col.augment if key is not None and col.augment.get("enabled") else None
            jobs = [(v, None if aug is None or key is None else (*key, ci, i)) for i, v in enumerate(values)]
            results = list(_pool().map(lambda job, col=col, aug=aug: self._one(col, job[0], aug, job[1]), jobs))
            pixels = np.zeros((len(values), 3, self.size, self.size), dtype=np.float32)
            present = np.zeros(len(values), dtype=np.float32)
            for i, r in enumerate(results):
                if isinstance(r, UnreadableImage):
                    if self.strict:
                        raise DataError(f"image column {col.name!r}: {r.what}")
                    self.unreadable[col.name] = self.unreadable.get(col.name, 0) + 1
                    if len(self.failed) < 1_000_000:
                        self.failed.add(_key(values[i]))
                elif r is not None:
                    pixels[i], present[i] = r, 1.0
            out[col.name] = (pixels, present)
        return out

    def _one(self, col: ImageColumn, value: Any, aug: dict[str, Any] | None, seed: tuple[int, ...] | None
             ) -> np.ndarray | UnreadableImage | None:
        if value is None:
            return None
        try:
            with self._open(col, value) as img:
                return self._array(img, aug, seed)
        except UnreadableImage as err:
            return err
        except (OSError, ValueError, SyntaxError) as err:  # Pillow raises these on truncated or broken files
            return UnreadableImage(f"{_describe(col, value)} is not a readable image ({err})")

    def reset_counts(self) -> None:
        """Start counting unreadable images afresh (a new scoring pass)."""
        self.unreadable, self.failed = {}, set()

    def missing_mask(self, batch: pa.Table, column: str) -> np.ndarray:
        """True where the row's image was missing or could not be read (after it was scored)."""
        values = batch.column(column).to_pylist()
        return np.fromiter((v is None or _key(v) in self.failed for v in values), dtype=bool, count=len(values))

    def _open(self, col: ImageColumn, value: Any) -> Any:
        Image = _pil()
        try:
            if isinstance(value, (bytes, bytearray, memoryview)):  # encoded bytes, whatever the column held in training
                return Image.open(io.BytesIO(bytes(value)))
            if col.kind == "path" or isinstance(value, str):
                return Image.open(image_path(value, self.root))
            if col.kind == "bytes":
                return Image.open(io.BytesIO(bytes(value)))
            arr = np.asarray(value, dtype=np.float32)
            if arr.size != math.prod(col.shape):
                raise UnreadableImage(f"an array of {arr.size} pixels, not {'x'.join(map(str, col.shape))}")
            arr = arr.reshape(col.shape) * (255.0 / col.scale)
            arr = np.clip(arr, 0, 255).astype(np.uint8)
            return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        except FileNotFoundError as err:
            raise UnreadableImage(f"no such image file {str(err.filename or value)!r}") from err
        except (OSError, ValueError, SyntaxError) as err:
            raise UnreadableImage(
                f"{_describe(col, value)} is not a readable image ({str(err).splitlines()[0]})"
            ) from err

    def _array(self, img: Any, aug: dict[str, Any] | None, seed: tuple[int, ...] | None) -> np.ndarray:
        Image = _pil()
        if img.format == "JPEG":
            img.draft("RGB", (self.resize, self.resize))  # decode big JPEGs at a reduced scale: much faster
        img = img.convert("RGB")
        if aug is None or seed is None:
            return center_view(img, self.size, self.resize, self.mean, self.std)
        rng = np.random.default_rng(list(seed))
        x = normalise(augment(img, self.size, aug, rng, Image), self.mean, self.std)
        if aug.get("noise"):
            x = x + rng.normal(0.0, float(aug["noise"]), size=x.shape).astype(np.float32)
        return x

    def thumbnails(self, batch: pa.Table, side: int = 8) -> np.ndarray:
        """Grey ``side x side`` thumbnails of every image column, flattened ``[B, columns * side^2]``
        in 0-1 (missing or unreadable images: NaN), the baseline's pixel features."""
        Image = _pil()
        parts = []
        for col in self.columns:
            def one(v: Any, col: ImageColumn = col) -> np.ndarray:
                if v is None:
                    return np.full(side * side, np.nan, dtype=np.float32)
                try:
                    with self._open(col, v) as img:
                        g = img.convert("L").resize((side, side), Image.BILINEAR)
                        return np.asarray(g, dtype=np.float32).ravel() / 255.0
                except (UnreadableImage, OSError, ValueError, SyntaxError):
                    return np.full(side * side, np.nan, dtype=np.float32)

            parts.append(np.stack(list(_pool().map(one, batch.column(col.name).to_pylist()))))
        return np.concatenate(parts, axis=1) if parts else np.zeros((batch.num_rows, 0), dtype=np.float32)

    def sample_values(self, column: str, rows: int, rng: np.random.Generator) -> pa.Array:
        """``rows`` random images for ``column`` as its kind stores them (paths: PNG bytes, which every
        kind reads), for export parity checks."""
        col = next(c for c in self.columns if c.name == column)
        Image = _pil()
        side = max(8, self.size // 2)
        values: list[Any] = []
        for _ in range(rows):
            arr = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
            if col.kind == "pixels":
                h, w, c = col.shape
                values.append((rng.random(h * w * c) * col.scale).reshape(h, w, c).tolist())
                continue
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            values.append(buf.getvalue())
        return pa.array(values)

    # -- the frozen strategy's embedding cache (hone.models.embedding_cache) -----------------------
    @property
    def cache_columns(self) -> list[str]:
        return self.names

    def cache_settings(self) -> str:
        return json.dumps([self.size, self.resize, self.mean, self.std])

    def content_fingerprint(self, path: Path, column: str) -> tuple[str, int]:
        """A hash of the column's images in file order (the files' bytes for paths), and the row count."""
        col = next(c for c in self.columns if c.name == column)
        h = hashlib.sha256(json.dumps([col.kind, col.shape, col.scale]).encode())
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=[column]):
            values = batch.column(0).to_pylist()
            for digest in _pool().map(lambda v: self._digest(col, v), values):
                h.update(digest)
            n += len(values)
        return h.hexdigest()[:24], n

    def _digest(self, col: ImageColumn, value: Any) -> bytes:
        if value is None:
            return b"\x00"
        if col.kind == "pixels":
            return hashlib.sha256(np.asarray(value, dtype=np.float32).tobytes()).digest()
        if col.kind == "bytes":
            return hashlib.sha256(bytes(value)).digest()
        try:
            return hashlib.sha256(image_path(value, self.root).read_bytes()).digest()
        except OSError:
            return b"\x01" + str(value).encode()

    def cache_order(self, batch: pa.Table, column: str) -> np.ndarray:
        return np.arange(batch.num_rows)

    def column_inputs(self, batch: pa.Table, column: str) -> tuple[np.ndarray]:
        """The column's pixels for the encoder's ``pool``."""
        return (self.encode(batch, only=column)[column][0],)

    def presence(self, batch: pa.Table, column: str) -> np.ndarray:
        """1 where the row has an image, 0 where it is missing (checked readable before training)."""
        return np.asarray(batch.column(column).is_valid(), dtype=np.float32)

    def from_cache(self, batch: pa.Table, column: str, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return embeddings, self.presence(batch, column)

    def reference(self, inputs: Any) -> Any:
        """Every image at the mean colour (zeros once normalised); presence as it is."""
        return {c: (px * 0, present) for c, (px, present) in inputs.items()}

    def explain_row(
        self, attributions: dict[str, Any], batch: pa.Table, i: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """A column's attribution is its map's sum; the map (``side`` x ``side`` cells) is shown."""
        cols, maps = {}, {}
        for c in self.names:
            m = attributions[c][i]
            maps[c] = {"side": int(m.shape[0]), "map": [round(float(v), 7) for v in m.ravel()]}
            cols[c] = float(m.sum())
        return cols, {"images": maps}

    def encoder_spec(self) -> dict[str, Any]:
        return {"columns": self.names, "size": self.size, "fused": self.fused}

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [vars(c) for c in self.columns], "size": self.size, "resize": self.resize,
                "mean": self.mean, "std": self.std, "fused": self.fused}

    @classmethod
    def from_dict(cls, d: dict[str, Any], assets: Path | None) -> ImagePreprocessor:
        try:
            return cls([ImageColumn(**c) for c in d["columns"]], int(d["size"]), int(d["resize"]),
                       list(d["mean"]), list(d["std"]), bool(d.get("fused", False)))
        except (KeyError, TypeError) as err:
            raise ModelDirError(f"the image preprocessing in hone.json is incomplete: {err}") from err


def _key(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return hashlib.sha1(bytes(value)).digest()
    if isinstance(value, list):
        return hashlib.sha1(np.asarray(value, dtype=np.float32).tobytes()).digest()
    return value


def _describe(col: ImageColumn, value: Any) -> str:
    if isinstance(value, str):
        return f"file {str(value)!r}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        head = bytes(value[:8]) if value is not None else b""
        return f"a value of {len(value)} bytes starting {head!r}"
    return "an array of pixels"


def _pixel_layout(con: duckdb.DuckDBPyConnection, path: Path, column: str, dtype: str) -> tuple[list[int], float]:
    """``[H, W, C]`` and the value scale (255 or 1) of a pixel-array column, from the training file."""
    q = qi(column)
    row = con.sql(f"SELECT {q} FROM {parquet(path)} WHERE {q} IS NOT NULL LIMIT 1").fetchall()
    if not row:
        raise DataError(f"image column {column!r} has no arrays of pixels in the training split")
    arr = np.asarray(row[0][0], dtype=np.float32)
    flat = q
    for _ in range(dtype.count("[") - 1):  # [H][W][C] -> one list
        flat = f"flatten({flat})"
    top = con.sql(f"SELECT max(list_max({flat})) FROM (SELECT {q} FROM {parquet(path)} LIMIT 1000)").fetchall()[0][0]
    scale = 1.0 if top is not None and float(top) <= 1.0 else 255.0
    if arr.ndim == 1:
        n = arr.size
        for c in (1, 3):
            side = math.isqrt(n // c)
            if n % c == 0 and side * side * c == n:
                return [side, side, c], scale
        raise DataError(f"image column {column!r} holds flat arrays of {n} values: not a square grey ({n} = s*s) "
                        "or colour (s*s*3) image; store them as [H][W] or [H][W][C] arrays")
    if arr.ndim == 2:
        return [arr.shape[0], arr.shape[1], 1], scale
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        return [arr.shape[0], arr.shape[1], min(arr.shape[2], 3)], scale
    raise DataError(f"image column {column!r} holds arrays of shape {list(arr.shape)}; expected [H][W] or [H][W][C]")


def normalise(img: Any, mean: list[float], std: list[float]) -> np.ndarray:
    """An RGB image as a normalised ``float32 [3, H, W]`` array."""
    x: np.ndarray = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def center_view(img: Any, size: int, resize: int, mean: list[float], std: list[float]) -> np.ndarray:
    """The evaluation view of an RGB image: shorter side resized to ``resize``, the centre
    ``size x size`` crop, normalised ``[3, size, size]`` (the ImageNet recipe: 256, 224)."""
    Image = _pil()
    return normalise(_center_crop(_resize_short(img, resize, Image), size), mean, std)


def _resize_short(img: Any, side: int, Image: Any) -> Any:
    w, h = img.size
    if min(w, h) == side:
        return img
    s = side / min(w, h)
    return img.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)


def _center_crop(img: Any, side: int) -> Any:
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def augment(img: Any, size: int, aug: dict[str, Any], rng: np.random.Generator, Image: Any) -> Any:
    """One training view of ``img`` (``size x size``): random resized crop, flip, rotation and colour
    jitter, every draw from ``rng`` (so a row's view depends only on its seed). Noise is added to
    the normalised pixels by the caller."""
    from PIL import ImageEnhance

    w, h = img.size
    area = w * h
    box = (0, 0, w, h)
    scale = float(aug.get("crop_scale", 1.0))
    if scale < 1.0:
        for _ in range(10):  # the Inception crop: area share in [scale, 1], aspect ratio in [3/4, 4/3]
            target = area * rng.uniform(scale, 1.0)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                box = (x0, y0, x0 + cw, y0 + ch)
                break
    else:
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    img = img.resize((size, size), Image.BILINEAR, box=box)
    if aug.get("flip") and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    deg = float(aug.get("rotation", 0.0))
    if deg > 0:
        img = img.rotate(float(rng.uniform(-deg, deg)), resample=Image.BILINEAR)
    j = float(aug.get("color_jitter", 0.0))
    if j > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhancer(img).enhance(float(rng.uniform(1 - j, 1 + j)))
    return img
