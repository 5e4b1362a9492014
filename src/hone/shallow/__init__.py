"""Shallow models on arrays, no torch: TF-IDF features, linear models and LightGBM.

Both cheap models hone fits are made here: the run's baseline (:mod:`hone.models.baseline` gives them
the preprocessed columns) and the audit's out-of-fold label-error model
(:mod:`hone.quality.label_errors`). Each takes matrices and labels and returns fitted parameters that
save without pickle (arrays, a vocabulary, LightGBM's own text format)."""
