"""Engines beyond one process: Ray Train for fitting (torchrun needs nothing here: the runtime
detects it). Ray is an optional extra, imported only when ``engine.kind`` is ``ray``."""
