"""Runtime backends (onnxruntime, TensorRT). Leaves of the dependency graph, imported lazily."""
