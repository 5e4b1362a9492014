"""Data quality checks (the audit): they read the table through the data layer and never import
the training code. See :mod:`hone.quality.base` for the Check registry."""
