"""graphopt.backends.trt_support, second review: ops the TensorRT 10.15 matrix lists that earlier
10.x parsers did not have."""

from __future__ import annotations

import pytest

from graphopt.backends.trt_support import op_support, parse_version


@pytest.mark.parametrize(
    ("op", "first"),
    [
        # onnx/onnx-tensorrt docs/Changelog.md: 10.4 GA "Added support for BlackmanWindow,
        # HammingWindow, and HannWindow", 10.5 GA "Added support for real-valued STFT"
        ("BlackmanWindow", "10.4"),
        ("HammingWindow", "10.4"),
        ("HannWindow", "10.4"),
        ("STFT", "10.5"),
        # NVIDIA/TensorRT CHANGELOG.md (release/11.1): 10.14 GA "Added support for the Attention
        # operator"; 10.15 GA "Added support for RotaryEmbedding, RMSNormalization and
        # TensorScatter"
        ("Attention", "10.14"),
        ("RotaryEmbedding", "10.15"),
        ("RMSNormalization", "10.15"),
        ("TensorScatter", "10.15"),
    ],
)
def test_ops_added_during_10_x_are_refused_by_earlier_minors(op, first):
    major, minor = (int(p) for p in first.split("."))
    assert op_support(op, parse_version(f"{major}.{minor - 1}")) == "no"
    assert op_support(op, parse_version(first)) == "yes"
    assert op_support(op, parse_version("10")) == "yes"
    assert op_support(op, parse_version("11")) == "yes"


def test_the_10_1_matrix_ops_stay_supported_on_10_0():
    """docs/operators.md at the 10.1 GA commit 96e781103cfc marks DeformConv and Gelu Y."""
    assert op_support("Gelu", parse_version("10.0")) == "yes"
    assert op_support("DeformConv", parse_version("10.1")) == "yes"
