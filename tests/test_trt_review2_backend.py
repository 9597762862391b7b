"""graphopt.backends.tensorrt, second review: TRT_SYMBOLS against TensorRT 11's removals."""

from __future__ import annotations

from graphopt.backends.tensorrt import TRT_SYMBOLS


def test_removed_in_11_lists_every_tensorrt10_only_config_call_11_dropped():
    """TensorRT 11.x migration guide, "Removed Python APIs and Replacements"
    (docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html)
    lists IBuilderConfig.set_calibration_profile() with int8_calibrator; NVIDIA/TensorRT
    python/src/infer/pyCore.cpp on release/11.1 binds neither. The real-TensorRT symbol test
    reads this list to prove the 11.x bindings lack what only the 10.x path may call."""
    removed = set(TRT_SYMBOLS["removed_in_11"])
    assert "IBuilderConfig.set_calibration_profile" in removed
    config_calls_10 = {s for s in TRT_SYMBOLS["tensorrt10"] if s.startswith("IBuilderConfig.")}
    assert config_calls_10 - {"IBuilderConfig.set_flag"} <= removed
