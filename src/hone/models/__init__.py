"""Networks: per-modality encoders, fusion and task heads, built from the model config."""
