"""Write scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes) as PNG files and a
table of their paths, for the image example of the README:

    python examples/make_digits.py            # -> examples/digits/digits.csv + examples/digits/*.png
    hone fit examples/digits/digits.csv --target digit --set model.augment.flip=false
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from PIL import Image
from sklearn.datasets import load_digits


def main(folder: Path = Path(__file__).resolve().parent / "digits") -> Path:
    digits = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(digits.images):  # values 0-16
        name = f"{i:04d}.png"
        Image.fromarray(np.round(img * 255 / 16).astype(np.uint8)).save(folder / name)
        paths.append(name)
    out = folder / "digits.csv"
    pacsv.write_csv(pa.table({"image": paths, "digit": [f"d{k}" for k in digits.target]}), out)
    return out


if __name__ == "__main__":
    print(main())
