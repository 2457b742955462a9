"""ONNX Runtime plumbing: sessions and providers, batch-axis graph surgery, the batch-isolation check."""
