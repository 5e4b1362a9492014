"""Everything ONNX: the graph of a whole model (network, baseline and decision rule in one file,
:mod:`.graph`), the export with its parity check (:mod:`.export`), hone's per-token int8 quantisation
(:mod:`.int8`), the baseline's graphs (:mod:`.baseline`), and the ONNX Runtime sessions that score
with them (:mod:`.sessions`). ``onnx`` and ``onnxruntime`` are imported on first use (``hone[onnx]``).

A model is used here through what :class:`hone.Model` holds (its network, preprocessor, baseline and
decision), so this floor sits below the model package, which scores through its sessions."""
