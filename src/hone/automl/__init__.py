"""``hone auto``: the best model for the table in the time it is given (:mod:`hone.automl.planner`)."""
