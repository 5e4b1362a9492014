"""Metrics and evaluation reports (no torch here)."""
