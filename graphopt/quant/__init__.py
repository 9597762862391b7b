"""INT8 post-training quantization: calibration, Q/DQ placement, TensorRT calibration caches.

`graphopt.quantize` (in `graphopt.quant.api`) is the entry point; `histogram` holds the
calibrators, `collect` runs the model over calibration feeds, `placement` decides where Q/DQ
goes per target, `qdq` rewrites the graph, `cache` reads and writes TensorRT calibration caches,
`sensitivity` ranks groups, `data` turns a folder of feeds or images into calibration data.
"""
