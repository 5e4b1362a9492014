"""Preprocessors fitted on the training split only, serialised as JSON."""
