"""Deploy without PyTorch: the whole detector as one ONNX graph, proved equal to the model at export.

- :mod:`~mmocc.export.graph` and :mod:`~mmocc.export.heads`: the fitted
  detector as a torch module, from raw views to score, verdict, view scores,
  part scores and maps (torch);
- :mod:`~mmocc.export.writer`: :func:`~mmocc.export.writer.export_onnx`,
  tracing, metadata and the parity check (torch, onnx, onnxruntime);
- :mod:`~mmocc.export.probes`: the parity check's default samples;
- :mod:`~mmocc.export.parity`: the comparison and its report (numpy);
- :mod:`~mmocc.export.metadata`: what the file says about itself (numpy);
- :mod:`~mmocc.export.runtime`: :class:`~mmocc.export.runtime.OnnxDetector`,
  scoring with ONNX Runtime (no torch).

This package imports nothing on its own, so the runtime stays free of torch.
"""
