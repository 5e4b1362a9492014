"""Hyperparameter search with Optuna (``hone tune``): a default space per strategy, pruning on the
validation metric, a resumable SQLite study, and a refit of the best configuration."""
