"""Robustness fuzz of graphopt's front door: damaged and hostile model files.

The rule under test: bad input gets a clear error and loses nothing. The Python API
(`graphopt.optimize` with every built-in pipeline) either returns a model or raises a
`GraphoptError` with a one-line message (never a bare ValueError/KeyError/IndexError/
TypeError/AttributeError/RecursionError or protobuf's DecodeError); the CLI (`inspect`,
`check --target tensorrt`, `optimize IN -o OUT`) exits 0 (check: 0 or 1) or exits 2 with one
stderr line and no output file, never a traceback. An optimized model of an input that passed
the ONNX checker and ran in onnxruntime passes the checker and runs too.

Seeds: small hand-built models (Conv chain, If and Loop bodies, a model-local function, a
sparse initializer, external data) and the three real detectors. Mutations: byte flips,
truncations and insertions in the serialized protobuf, and structured edits of the parsed
ModelProto (`MUTATIONS`). Each case runs under an alarm (`CASE_SECONDS`) so a hang fails.
"""

from __future__ import annotations

import contextlib
import io
import random
import signal
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto

import graphopt
from graphopt import cli
from graphopt.analysis import fusion_groups
from graphopt.errors import GraphoptError
from graphopt.pipeline import builtin_pipelines

# A hang is a case that never ends: the bound is generous (a real-detector case runs every
# pipeline on three givens; on a loaded 2-core machine that took over 20 s, a false 'hang').
CASE_SECONDS = 120
FLOAT = TensorProto.FLOAT
PIPELINES = sorted(builtin_pipelines())
IR = 8  # what every onnxruntime here runs


# ---------------------------------------------------------------- seeds


def _model(graph: onnx.GraphProto, opset: int = 13, **kw: object) -> onnx.ModelProto:
    opsets = [oh.make_opsetid("", opset), *kw.pop("extra_opsets", [])]  # type: ignore[list-item]
    m = oh.make_model(graph, opset_imports=opsets, **kw)  # type: ignore[arg-type]
    m.ir_version = IR
    return m


def seed_conv() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = oh.make_tensor("w", FLOAT, [4, 3, 3, 3], rng.standard_normal(108).astype(np.float32))
    b = oh.make_tensor("b", FLOAT, [4], rng.standard_normal(4).astype(np.float32))
    s = oh.make_tensor("s", FLOAT, [1, 4, 1, 1], rng.standard_normal(4).astype(np.float32))
    nodes = [
        oh.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        oh.make_node("Mul", ["c", "s"], ["m"], name="mul"),
        oh.make_node("Sigmoid", ["m"], ["g"], name="sig"),
        oh.make_node("Mul", ["m", "g"], ["sw"], name="swish"),
        oh.make_node("Transpose", ["sw"], ["t"], name="tr", perm=[0, 2, 3, 1]),
        oh.make_node("Transpose", ["t"], ["y"], name="tr2", perm=[0, 3, 1, 2]),
    ]
    g = oh.make_graph(
        nodes,
        "conv",
        [oh.make_tensor_value_info("x", FLOAT, [1, 3, 8, 8])],
        [oh.make_tensor_value_info("y", FLOAT, [1, 4, 8, 8])],
        [w, b, s],
        value_info=[oh.make_tensor_value_info("c", FLOAT, [1, 4, 8, 8])],
    )
    return _model(g)


def seed_if() -> onnx.ModelProto:
    one = oh.make_tensor("one", FLOAT, [1], [1.0])
    then = oh.make_graph(
        [oh.make_node("Add", ["x", "one"], ["t_out"], name="then_add")],
        "then",
        [],
        [oh.make_tensor_value_info("t_out", FLOAT, [2])],
        [one],
    )
    other = oh.make_graph(
        [oh.make_node("Neg", ["x"], ["e_out"], name="else_neg")],
        "else",
        [],
        [oh.make_tensor_value_info("e_out", FLOAT, [2])],
    )
    nodes = [
        oh.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
        oh.make_node("Greater", ["s", "zero"], ["cond"], name="gt"),
        oh.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other),
    ]
    g = oh.make_graph(
        nodes,
        "ifg",
        [oh.make_tensor_value_info("x", FLOAT, [2])],
        [oh.make_tensor_value_info("y", FLOAT, [2])],
        [oh.make_tensor("zero", FLOAT, [], [0.0])],
    )
    return _model(g)


def seed_loop() -> onnx.ModelProto:
    body = oh.make_graph(
        [
            oh.make_node("Identity", ["cond_in"], ["cond_out"], name="b_cond"),
            oh.make_node("Add", ["acc_in", "x"], ["acc_out"], name="b_add"),
            oh.make_node("Relu", ["acc_out"], ["scan_out"], name="b_relu"),
        ],
        "body",
        [
            oh.make_tensor_value_info("i", TensorProto.INT64, []),
            oh.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            oh.make_tensor_value_info("acc_in", FLOAT, [2]),
        ],
        [
            oh.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            oh.make_tensor_value_info("acc_out", FLOAT, [2]),
            oh.make_tensor_value_info("scan_out", FLOAT, [2]),
        ],
    )
    nodes = [oh.make_node("Loop", ["n", "c", "x"], ["y", "ys"], name="loop", body=body)]
    g = oh.make_graph(
        nodes,
        "loopg",
        [oh.make_tensor_value_info("x", FLOAT, [2])],
        [
            oh.make_tensor_value_info("y", FLOAT, [2]),
            oh.make_tensor_value_info("ys", FLOAT, [3, 2]),
        ],
        [
            oh.make_tensor("n", TensorProto.INT64, [], [3]),
            oh.make_tensor("c", TensorProto.BOOL, [], [True]),
        ],
    )
    return _model(g)


def seed_function() -> onnx.ModelProto:
    fn = oh.make_function(
        "local",
        "Swish",
        ["a"],
        ["b"],
        [
            oh.make_node("Sigmoid", ["a"], ["s"]),
            oh.make_node("Mul", ["a", "s"], ["b"]),
        ],
        [oh.make_opsetid("", 13)],
    )
    nodes = [
        oh.make_node("Swish", ["x"], ["h"], name="call", domain="local"),
        oh.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    g = oh.make_graph(
        nodes,
        "fng",
        [oh.make_tensor_value_info("x", FLOAT, [2, 3])],
        [oh.make_tensor_value_info("y", FLOAT, [2, 3])],
    )
    return _model(g, extra_opsets=[oh.make_opsetid("local", 1)], functions=[fn])


def seed_sparse() -> onnx.ModelProto:
    values = oh.make_tensor("sp", FLOAT, [3], [1.0, 2.0, 3.0])
    indices = oh.make_tensor("sp_idx", TensorProto.INT64, [3], [0, 4, 8])
    sparse = oh.make_sparse_tensor(values, indices, [3, 3])
    nodes = [
        oh.make_node("MatMul", ["x", "sp"], ["m"], name="mm"),
        oh.make_node("Add", ["m", "bias"], ["y"], name="add"),
    ]
    g = oh.make_graph(
        nodes,
        "sparseg",
        [oh.make_tensor_value_info("x", FLOAT, [2, 3])],
        [oh.make_tensor_value_info("y", FLOAT, [2, 3])],
        [oh.make_tensor("bias", FLOAT, [3], [0.5, -0.5, 1.0])],
        sparse_initializer=[sparse],
    )
    return _model(g)


SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv": seed_conv,
    "if": seed_if,
    "loop": seed_loop,
    "function": seed_function,
    "sparse": seed_sparse,
}


def write_external(model: onnx.ModelProto, folder: Path, name: str = "m.onnx") -> Path:
    """`model` saved in `folder` with every initializer in `w.bin` (offsets per tensor)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    for t in model.graph.initializer:  # only raw_data goes to the file
        t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t), t.name))
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    return path


# ---------------------------------------------------------------- mutations
# Each takes (rng, model) and edits the model in place (returns None) or returns bytes.


def _inits(m: onnx.ModelProto) -> list[onnx.TensorProto]:
    return list(m.graph.initializer)


def _pick(rng: random.Random, items: list):  # type: ignore[no-untyped-def]
    return items[rng.randrange(len(items))] if items else None


def mut_byte_flip(rng: random.Random, m: onnx.ModelProto) -> bytes:
    data = bytearray(m.SerializeToString())
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def mut_truncate(rng: random.Random, m: onnx.ModelProto) -> bytes:
    data = m.SerializeToString()
    return data[: rng.randrange(1, len(data))]


def mut_insert(rng: random.Random, m: onnx.ModelProto) -> bytes:
    data = bytearray(m.SerializeToString())
    at = rng.randrange(len(data))
    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


def mut_raw_length(rng: random.Random, m: onnx.ModelProto) -> None:
    t = _pick(rng, _inits(m))
    if t is None:
        return
    try:
        raw = onnx.numpy_helper.to_array(t).tobytes()
    except Exception:  # damaged already (another mutation)
        raw = b"\0" * 8
    t.ClearField("float_data")
    t.ClearField("int64_data")
    t.ClearField("int32_data")
    t.raw_data = raw[: len(raw) // 2] if rng.random() < 0.5 else raw + b"\0" * 12


def mut_dims(rng: random.Random, m: onnx.ModelProto) -> None:
    t = _pick(rng, _inits(m))
    if t is None:
        return
    choice = rng.choice(["neg", "huge", "zero", "extra", "drop"])
    if choice == "extra":
        t.dims.append(rng.choice([1, 2, 2**40]))
    elif choice == "drop" and t.dims:
        del t.dims[-1]
    elif t.dims:
        i = rng.randrange(len(t.dims))
        t.dims[i] = {"neg": -3, "huge": 2**40, "zero": 0}.get(choice, 1)
    else:
        t.dims.append({"neg": -3, "huge": 2**40, "zero": 0}.get(choice, 1))


def mut_dtype(rng: random.Random, m: onnx.ModelProto) -> None:
    t = _pick(rng, _inits(m))
    if t is None:
        return
    t.data_type = rng.choice(
        [
            TensorProto.STRING,
            TensorProto.FLOAT8E4M3FN,
            TensorProto.INT4,
            TensorProto.UINT4,
            TensorProto.FLOAT16,
            TensorProto.DOUBLE,
            TensorProto.BOOL,
            TensorProto.UNDEFINED,
            99,
        ]
    )


def mut_string_tensor(rng: random.Random, m: onnx.ModelProto) -> None:
    t = _pick(rng, _inits(m))
    if t is None:
        return
    name, dims = t.name, list(t.dims)
    t.Clear()
    t.name, t.data_type = name, TensorProto.STRING
    t.dims.extend(dims)
    count = int(np.prod(dims)) if dims else 1
    t.string_data.extend([b"ab"] * min(count, 64))


def mut_duplicate_name(rng: random.Random, m: onnx.ModelProto) -> None:
    g = m.graph
    kind = rng.choice(["node", "output", "init", "input"])
    if kind == "node" and len(g.node) > 1:
        g.node[rng.randrange(len(g.node))].name = g.node[0].name
    elif kind == "output" and len(g.node) > 1:
        a, b = rng.sample(range(len(g.node)), 2)
        if g.node[a].output and g.node[b].output:
            g.node[b].output[0] = g.node[a].output[0]
    elif kind == "init" and g.initializer:
        g.initializer.add().CopyFrom(g.initializer[rng.randrange(len(g.initializer))])
    elif kind == "input":
        g.input.add().CopyFrom(g.input[0])


def mut_dangling_input(rng: random.Random, m: onnx.ModelProto) -> None:
    n = _pick(rng, list(m.graph.node))
    if n is not None and n.input:
        n.input[rng.randrange(len(n.input))] = "nothing_" + str(rng.randrange(9))


def mut_cycle(rng: random.Random, m: onnx.ModelProto) -> None:
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        if nodes and nodes[0].input:  # a self loop
            nodes[0].input[0] = nodes[0].output[0]
        return
    a, b = sorted(rng.sample(range(len(nodes)), 2))
    if nodes[a].input and nodes[b].output:
        nodes[a].input[0] = nodes[b].output[0]


def mut_reorder(rng: random.Random, m: onnx.ModelProto) -> None:
    nodes = list(m.graph.node)
    rng.shuffle(nodes)
    del m.graph.node[:]
    m.graph.node.extend(nodes)


def mut_arity(rng: random.Random, m: onnx.ModelProto) -> None:
    n = _pick(rng, list(m.graph.node))
    if n is None:
        return
    choice = rng.choice(["more_in", "fewer_in", "more_out", "fewer_out", "empty_in"])
    if choice == "more_in":
        n.input.extend([n.input[0] if n.input else "x"] * rng.randint(1, 5))
    elif choice == "fewer_in" and n.input:
        del n.input[-1]
    elif choice == "more_out":
        n.output.extend([f"extra_{i}" for i in range(rng.randint(1, 4))])
    elif choice == "fewer_out" and n.output:
        del n.output[-1]
    elif choice == "empty_in" and n.input:
        n.input[0] = ""


def mut_op(rng: random.Random, m: onnx.ModelProto) -> None:
    n = _pick(rng, list(m.graph.node))
    if n is None:
        return
    choice = rng.choice(["unknown", "domain", "other_op", "no_op"])
    if choice == "unknown":
        n.op_type = "NoSuchOp"
    elif choice == "domain":
        n.domain = rng.choice(["com.nowhere", "ai.onnx.ml", "com.microsoft", "ai.onnx"])
    elif choice == "no_op":
        n.op_type = ""
    else:
        n.op_type = rng.choice(
            ["Conv", "If", "Loop", "Scan", "Reshape", "Concat", "Split", "Resize", "Gemm"]
        )


def mut_attribute(rng: random.Random, m: onnx.ModelProto) -> None:
    n = _pick(rng, list(m.graph.node))
    if n is None:
        return
    if n.attribute and rng.random() < 0.5:
        a = n.attribute[rng.randrange(len(n.attribute))]
        if rng.random() < 0.4:
            n.attribute.remove(a)  # a required attribute missing, maybe
            return
        name = a.name
        a.Clear()
        a.name = name
        kind = rng.choice(["f", "s", "ints", "i", "t", "g", "empty"])
        if kind == "f":
            a.f, a.type = 1.5, onnx.AttributeProto.FLOAT
        elif kind == "s":
            a.s, a.type = b"\xff\xfe", onnx.AttributeProto.STRING
        elif kind == "ints":
            a.ints.extend([-1, 2**40, 0])
            a.type = onnx.AttributeProto.INTS
        elif kind == "i":
            a.i, a.type = -(2**40), onnx.AttributeProto.INT
        elif kind == "t":
            a.t.CopyFrom(oh.make_tensor("at", FLOAT, [2], [1.0, 2.0]))
            a.type = onnx.AttributeProto.TENSOR
        elif kind == "g":
            a.g.CopyFrom(oh.make_graph([], "empty", [], []))
            a.type = onnx.AttributeProto.GRAPH
        # "empty": no type, no value
    else:
        n.attribute.append(
            oh.make_attribute(rng.choice(["axis", "perm", "pads", "bogus"]), [7, -9])
        )


def mut_opsets(rng: random.Random, m: onnx.ModelProto) -> None:
    choice = rng.choice(["none", "dup", "zero", "huge", "dup_other", "ai.onnx"])
    if choice == "none":
        del m.opset_import[:]
    elif choice == "dup":
        m.opset_import.add().CopyFrom(m.opset_import[0])
        m.opset_import[-1].version = 11
    elif choice == "zero":
        m.opset_import[0].version = 0
    elif choice == "huge":
        m.opset_import[0].version = 10000
    elif choice == "dup_other":
        m.opset_import.append(oh.make_opsetid("com.microsoft", 1))
        m.opset_import.append(oh.make_opsetid("com.microsoft", 2))
    else:
        m.opset_import[0].domain = "ai.onnx"


def mut_ir(rng: random.Random, m: onnx.ModelProto) -> None:
    m.ir_version = rng.choice([0, 1, 2, 3, 100, -1])


def mut_io(rng: random.Random, m: onnx.ModelProto) -> None:
    g = m.graph
    choice = rng.choice(["out_is_in", "empty", "no_outputs", "no_inputs", "out_is_init"])
    if choice == "out_is_in":
        g.output.add().CopyFrom(g.input[0])
    elif choice == "empty":
        del g.node[:]
    elif choice == "no_outputs":
        del g.output[:]
    elif choice == "no_inputs":
        del g.input[:]
    elif g.initializer:
        t = g.initializer[0]
        g.output.append(oh.make_tensor_value_info(t.name, t.data_type, list(t.dims)))


def mut_value_info(rng: random.Random, m: onnx.ModelProto) -> None:
    g = m.graph
    t = _pick(rng, _inits(m))
    if t is not None and rng.random() < 0.5:
        dtype = rng.choice([TensorProto.INT64, FLOAT, TensorProto.STRING])
        g.value_info.append(oh.make_tensor_value_info(t.name, dtype, [7, 7, 7]))
    else:
        vi = _pick(rng, list(g.input) + list(g.output))
        if vi is None:
            return
        vi.type.tensor_type.elem_type = rng.choice([TensorProto.STRING, 0, 99, TensorProto.INT4])
        shape = vi.type.tensor_type.shape
        if shape.dim:
            shape.dim[0].dim_value = rng.choice([-1, 0, 2**40])


def _bodies(m: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    for n in m.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield a.g


def mut_body(rng: random.Random, m: onnx.ModelProto) -> None:
    body = _pick(rng, list(_bodies(m)))
    if body is None:
        return
    choice = rng.choice(["drop_out", "add_out", "drop_in", "add_in", "empty", "dangle"])
    if choice == "drop_out" and body.output:
        del body.output[-1]
    elif choice == "add_out":
        body.output.add().CopyFrom(body.output[0] if body.output else body.input[0])
    elif choice == "drop_in" and body.input:
        del body.input[-1]
    elif choice == "add_in":
        body.input.append(oh.make_tensor_value_info("more", FLOAT, [2]))
    elif choice == "empty":
        del body.node[:]
    elif body.node and body.node[0].input:
        body.node[0].input[0] = "nowhere"


def mut_function(rng: random.Random, m: onnx.ModelProto) -> None:
    if not m.functions:
        return
    f = m.functions[0]
    choice = rng.choice(["recurse", "mutual", "dup", "drop_out", "no_opset", "dangle"])
    if choice == "recurse":
        f.node.append(oh.make_node(f.name, [f.output[0]], ["again"], domain=f.domain))
        f.output[0] = "again"
    elif choice == "mutual":
        g = m.functions.add()
        g.CopyFrom(f)
        g.name = f.name + "2"
        f.node[-1].op_type, f.node[-1].domain = g.name, f.domain
        g.node[-1].op_type, g.node[-1].domain = f.name, f.domain
    elif choice == "dup":
        m.functions.add().CopyFrom(f)
    elif choice == "drop_out":
        del f.output[:]
    elif choice == "no_opset":
        del f.opset_import[:]
    elif f.node:
        f.node[0].input[0] = "nowhere"


def mut_sparse(rng: random.Random, m: onnx.ModelProto) -> None:
    if not m.graph.sparse_initializer:
        return
    s = m.graph.sparse_initializer[0]
    choice = rng.choice(["idx_oob", "idx_neg", "dims", "no_values", "idx_dtype", "idx_count"])
    if choice == "idx_oob":
        s.indices.int64_data[-1] = 10**6
    elif choice == "idx_neg":
        s.indices.int64_data[0] = -5
    elif choice == "dims":
        s.dims[0] = 2**40
    elif choice == "no_values":
        s.values.ClearField("float_data")
    elif choice == "idx_dtype":
        s.indices.data_type = FLOAT
    else:
        s.indices.int64_data.append(2)


def mut_constant(rng: random.Random, m: onnx.ModelProto) -> None:
    """A Constant node (replacing a node or before the first) with a damaged value."""
    t = oh.make_tensor("cv", FLOAT, [2], [1.0, 2.0])
    choice = rng.choice(["two_values", "no_value", "wrong_kind", "bad_tensor", "sparse", "ints"])
    attrs: list[onnx.AttributeProto] = []
    if choice == "two_values":
        attrs = [oh.make_attribute("value", t), oh.make_attribute("value_float", 1.0)]
    elif choice == "wrong_kind":
        attrs = [oh.make_attribute("value", 3)]
    elif choice == "bad_tensor":
        bad = oh.make_tensor("cv", FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
        bad.dims[0] = rng.choice([3, -1, 2**40])
        attrs = [oh.make_attribute("value", bad)]
    elif choice == "sparse":
        sp = oh.make_sparse_tensor(
            oh.make_tensor("v", FLOAT, [1], [5.0]),
            oh.make_tensor("i", TensorProto.INT64, [1], [rng.choice([1, 99, -1])]),
            [2],
        )
        attrs = [oh.make_attribute("sparse_value", sp)]
    elif choice == "ints":
        attrs = [oh.make_attribute("value_ints", [], attr_type=onnx.AttributeProto.INTS)]
    node = oh.make_node("Constant", [], ["const_out"], name="const")
    node.attribute.extend(attrs)
    target = _pick(rng, [n for n in m.graph.node if n.input])
    if target is not None:
        target.input[rng.randrange(len(target.input))] = "const_out"
    m.graph.node.insert(0, node)


def mut_deep(rng: random.Random, m: onnx.ModelProto) -> None:
    """The whole graph wrapped in If nodes `depth` deep, each then-branch the one inside
    (recursive walks)."""
    depth = rng.choice([5, 20, 31])  # protobuf refuses to nest much deeper (its limit: 100)
    inputs, outputs = list(m.graph.input), list(m.graph.output)
    if not inputs:  # (another mutation took them: nothing for the else branch to pass on)
        return
    body = onnx.GraphProto()
    body.CopyFrom(m.graph)
    del body.input[:]  # an If body takes no inputs: it reads the outer scope
    other = oh.make_graph(  # the else branch: outputs from the first input (one level deep)
        [oh.make_node("Identity", [inputs[0].name], [o.name]) for o in outputs],
        "other",
        [],
        outputs,
    )
    for level in range(depth):
        node = oh.make_node(
            "If",
            ["deep_cond"],
            [o.name for o in outputs],
            name=f"if{level}",
            then_branch=body,
            else_branch=other,
        )
        body = oh.make_graph([node], f"w{level}", [], outputs)
    body.input.extend([*inputs, oh.make_tensor_value_info("deep_cond", TensorProto.BOOL, [])])
    m.graph.CopyFrom(body)


MUTATIONS: dict[str, Callable[[random.Random, onnx.ModelProto], bytes | None]] = {
    "byte_flip": mut_byte_flip,
    "truncate": mut_truncate,
    "insert": mut_insert,
    "raw_length": mut_raw_length,
    "dims": mut_dims,
    "dtype": mut_dtype,
    "string_tensor": mut_string_tensor,
    "duplicate_name": mut_duplicate_name,
    "dangling_input": mut_dangling_input,
    "cycle": mut_cycle,
    "reorder": mut_reorder,
    "arity": mut_arity,
    "op": mut_op,
    "attribute": mut_attribute,
    "opsets": mut_opsets,
    "ir": mut_ir,
    "io": mut_io,
    "value_info": mut_value_info,
    "body": mut_body,
    "function": mut_function,
    "sparse": mut_sparse,
    "constant": mut_constant,
    "deep": mut_deep,
}

EXTERNAL_MUTATIONS = ("outside", "missing", "offset", "length", "absolute", "dir", "no_location")


def mutate_external(kind: str, rng: random.Random, path: Path) -> None:
    """Damage the external data entries of the model at `path` (saved by `write_external`)."""
    m = onnx.load_model(str(path), load_external_data=False)
    t = _pick(rng, [t for t in m.graph.initializer if t.external_data])
    assert t is not None
    entries = {e.key: e for e in t.external_data}
    if kind == "outside":
        entries["location"].value = "../../etc/passwd"
    elif kind == "missing":
        entries["location"].value = "gone.bin"
    elif kind == "offset":
        entries["offset"].value = str(rng.choice([10**12, -4, 3]))
    elif kind == "length":
        if "length" in entries:
            entries["length"].value = str(rng.choice([10**12, -4, 0, 1]))
    elif kind == "absolute":
        entries["location"].value = "/etc/hostname"
    elif kind == "dir":
        entries["location"].value = "."
    else:
        t.ClearField("external_data")
    path.write_bytes(m.SerializeToString())


# ---------------------------------------------------------------- the checks


class CaseTimeout(BaseException):
    """A case ran past `CASE_SECONDS` (a BaseException: library code catching Exception must
    not swallow it)."""


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tail(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    where = ", ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[-3:])
    return f"{type(e).__name__}: {str(e)[:200]} [{where}]"


def _valid(model: onnx.ModelProto) -> bool:
    """Whether `model` passes the full ONNX check and onnxruntime makes a session of it and
    runs it on seeded feeds (a model with a Loop is not run: its trip count may be endless)."""
    try:
        onnx.checker.check_model(model, full_check=True)
        from graphopt.backends.onnxruntime import example_feeds, session

        run = session(model)
        if not any(n.op_type == "Loop" for n in model.graph.node):  # may never end
            run.run(None, example_feeds(model))
    except Exception:
        return False
    return True


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def check_case(path: Path, tmp: Path, *, pipelines: list[str] = PIPELINES) -> list[str]:
    """Every way the front door mishandles the model file at `path` (empty: none)."""
    problems: list[str] = []
    data = path.read_bytes()
    try:
        original: onnx.ModelProto | None = onnx.load_model_from_string(data)
    except Exception:
        original = None
    try:
        with _deadline(CASE_SECONDS):
            if original is not None and path.parent.joinpath("w.bin").exists():
                try:
                    original = onnx.load_model(str(path))
                except Exception:
                    original = None
            original_valid = original is not None and _valid(original)
            # every pipeline from the path; the bytes and a parsed ModelProto with the first
            for k, pipeline in enumerate(pipelines):
                givens: list[object] = [str(path)]
                if k == 0:
                    givens += [data] + ([original] if original is not None else [])
                for given in givens:
                    try:
                        result = graphopt.optimize(given, pipeline)
                    except GraphoptError as e:
                        if "\n" in str(e).strip() or not str(e).strip():
                            problems.append(f"optimize[{pipeline}]: message {str(e)!r}")
                        continue
                    except CaseTimeout:
                        raise
                    except BaseException as e:
                        problems.append(f"optimize[{pipeline}]: {_tail(e)}")
                        continue
                    if original_valid and given is not data and not _valid(result):
                        problems.append(f"optimize[{pipeline}]: valid input, invalid output")
            out = tmp / "out.onnx"
            for argv, ok in (
                (["inspect", str(path)], (0,)),
                (["check", str(path), "--target", "tensorrt"], (0, 1)),
                (["optimize", str(path), "-o", str(out)], (0,)),
            ):
                try:
                    rc, _, err = _cli(argv)
                except CaseTimeout:
                    raise
                except BaseException as e:
                    problems.append(f"cli {argv[0]}: {_tail(e)}")
                    continue
                lines = err.strip().splitlines()
                if rc == 2:
                    if len(lines) != 1:
                        problems.append(f"cli {argv[0]}: exit 2 with stderr {err!r}")
                    if argv[0] == "optimize" and out.exists():
                        problems.append("cli optimize: exit 2 left an output file")
                elif rc not in ok:
                    problems.append(f"cli {argv[0]}: exit {rc}: {err[-300:]!r}")
                elif argv[0] == "optimize":
                    if original_valid and not _valid(onnx.load_model(str(out))):
                        problems.append("cli optimize: valid input, invalid output")
                    out.unlink()
    except CaseTimeout as e:
        problems.append(f"hang: {e}")
    return problems


def make_case(seed_name: str, mutation: str, seed: int, tmp: Path) -> Path:
    """Write the mutated model `seed_name` × `mutation` × `seed` into `tmp`; return its path."""
    rng = random.Random(f"{seed_name}/{mutation}/{seed}")
    folder = tmp / f"{seed_name}-{mutation}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    if mutation.startswith("external:"):
        model = SEEDS[seed_name]()
        path = write_external(model, folder)
        mutate_external(mutation.split(":", 1)[1], rng, path)
        return path
    model = SEEDS[seed_name]() if seed_name in SEEDS else _real(seed_name)
    made = MUTATIONS[mutation](rng, model)
    path = folder / "m.onnx"
    path.write_bytes(made if made is not None else model.SerializeToString())
    return path


def _real(name: str) -> onnx.ModelProto:
    from graphopt.realmodels import fetch_model

    return onnx.load_model(str(fetch_model(name)))


# ---------------------------------------------------------------- regressions (each failed on
# its parent; the fuzz cases that found them are named)


def _save(model: onnx.ModelProto, tmp: Path, name: str = "m.onnx") -> Path:
    path = tmp / name
    path.write_bytes(model.SerializeToString())
    return path


def _assert_refused(path: Path, tmp: Path, needle: str) -> None:
    """optimize (API, every pipeline) raises a one-line GraphoptError holding `needle`; the CLI
    exits 2 with one stderr line and writes nothing."""
    for pipeline in PIPELINES:
        with pytest.raises(GraphoptError, match=needle) as info:
            graphopt.optimize(str(path), pipeline)
        assert "\n" not in str(info.value)
    out = tmp / "out.onnx"
    rc, _, err = _cli(["optimize", str(path), "-o", str(out)])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err
    assert not out.exists()


def test_bytes_with_a_negative_external_offset_is_a_load_error(tmp_path):
    # conv external:offset: ExternalDataInfo's ValueError came out of optimize(bytes)
    path = write_external(seed_conv(), tmp_path)
    model = onnx.load_model(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "offset":
            entry.value = "-4"
    for given in (model.SerializeToString(), model):
        with pytest.raises(GraphoptError, match=r"in external data 'w\.bin'"):
            graphopt.optimize(given)


def _if_with_body_name(name: bytes) -> onnx.ModelProto:
    """seed_if with its else branch's Neg writing `name` (its declared output left as is)."""
    model = seed_if()
    data = model.SerializeToString()
    assert data.count(b"e_out") == 2  # the Neg's output and the branch's output
    at = data.index(b"e_out")
    data = data[:at] + name + data[at + len(name) :]
    return onnx.load_model_from_string(data)


def test_a_body_name_that_is_not_utf8_is_a_load_error(tmp_path):
    # if byte_flip 8 / loop byte_flip 27: shape inference's UnicodeDecodeError and the subgraph
    # passes' TypeError (bytes sorted with str) came out of every pipeline and the CLI
    model = _if_with_body_name(b"e\xc8out")
    assert isinstance(model.graph.node[2].attribute[0].g.node[0].output[0], bytes)
    _assert_refused(_save(model, tmp_path), tmp_path, "is not UTF-8 text")


def test_a_graph_without_outputs_is_a_load_error(tmp_path):
    # loop io 7: an empty graph out, which onnxruntime refuses (the original ran)
    model = seed_loop()
    del model.graph.output[:]
    _assert_refused(_save(model, tmp_path), tmp_path, "declares no outputs")


def test_inspect_shows_names_that_are_not_utf8_and_unknown_types(tmp_path):
    # conv byte_flip 22 (op type S\xfagmoid) and conv value_info 1 (input of type 99): inspect
    # raised a TypeError (bytes sorted with str) and a ValueError (no name for 99)
    data = seed_conv().SerializeToString()
    at = data.index(b"Sigmoid")
    model = onnx.load_model_from_string(data[:at] + b"S\xfagmoid" + data[at + 7 :])
    model.graph.input[0].type.tensor_type.elem_type = 99
    path = _save(model, tmp_path)
    rc, out, err = _cli(["inspect", str(path)])
    assert (rc, err) == (0, "")
    assert "S\\xfagmoid 1" in out and "x: type 99 [1, 3, 8, 8]" in out
    rc, out, err = _cli(["inspect", "--json", str(path)])
    assert (rc, err) == (0, "") and '"dtype": "type 99"' in out


def test_shape_inference_that_fails_in_cpp_is_given_up(tmp_path):
    # function op 22: a Loop with one input and no body; ONNX inference's std::length_error
    # ("vector::reserve", a ValueError) came out of inspect and check
    model = seed_function()
    model.graph.node[1].op_type = "Loop"
    path = _save(model, tmp_path)
    assert _cli(["inspect", str(path)])[0] == 0
    assert _cli(["check", str(path), "--target", "tensorrt"])[0] in (0, 1)
    graphopt.optimize(str(path))


def test_a_body_reading_its_nodes_own_output_is_a_load_error(tmp_path):
    # combo 441 (deep + duplicate_name + body): the then-branch reads y, which the If itself
    # writes; inspect's FuseOps indexing raised KeyError 'if4'
    model = seed_if()
    then = model.graph.node[2].attribute[1].g
    assert then.name == "then"
    then.node[0].input[1] = "y"
    path = _save(model, tmp_path)
    rc, _, err = _cli(["inspect", str(path)])
    assert rc == 2 and "node 'if' (If) reads its own output 'y'" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(GraphoptError, match="reads its own output"):
        fusion_groups(model)


def test_check_takes_node_names_that_are_not_utf8(tmp_path):
    # combo 59 / 633: check_tensorrt sets the caller's node names back after indexing, and
    # protobuf cannot set a bytes name (UnicodeDecodeError out of check)
    model = seed_conv()
    model.graph.node[2].name = "sigmoid_node"
    data = model.SerializeToString().replace(b"sigmoid_node", b"sigm\xffid_node")
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert isinstance(onnx.load_model(str(path)).graph.node[2].name, bytes)
    rc, out, err = _cli(["check", str(path), "--target", "tensorrt"])
    assert (rc, err) == (0, "") and "0 errors" in out


def test_a_graph_name_that_is_not_utf8_is_carried(tmp_path):
    # combo 1184: shape inference's light model and skeleton_copy set the graph's name, which
    # protobuf cannot do with bytes (UnicodeDecodeError out of inspect)
    model = seed_conv()
    model.graph.name = "graphname"
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString().replace(b"graphname", b"graph\xffame"))
    assert isinstance(onnx.load_model(str(path)).graph.name, bytes)
    rc, _, err = _cli(["inspect", str(path)])
    assert (rc, err) == (0, "")
    assert check_case(path, tmp_path, pipelines=["default", "tensorrt"]) == []


def test_an_op_type_with_a_control_character_stays_on_one_line(tmp_path):
    # combo 1039: "node 'gt' (Great\x0cr) reads tensor ...": the form feed broke the line
    model = seed_if()
    model.graph.node[1].op_type = "Great\x0cr"
    model.graph.node[1].input[1] = "ghost"
    rc, _, err = _cli(["optimize", str(_save(model, tmp_path)), "-o", str(tmp_path / "o.onnx")])
    assert rc == 2 and len(err.splitlines()) == 1 and "(Great\\x0cr) reads tensor" in err


# ---------------------------------------------------------------- the bounded fuzz

STRUCTURED = [m for m in MUTATIONS if m not in ("byte_flip", "truncate", "insert")]
CASES = [
    *[(s, m, 0) for s in SEEDS for m in STRUCTURED],  # 5 × 20
    *[(s, m, k) for s in ("if", "loop") for m in ("byte_flip", "insert") for k in (8, 13, 27)],
    *[(s, "truncate", k) for s in ("conv", "function") for k in range(2)],
    *[("conv", f"external:{kind}", 1) for kind in EXTERNAL_MUTATIONS],
    ("sparse", "external:offset", 1),
]


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "mutation", "k"), CASES, ids=lambda v: str(v))
def test_damaged_model(seed, mutation, k, tmp_path):
    path = make_case(seed, mutation, k, tmp_path)
    assert check_case(path, tmp_path) == []


@pytest.mark.slow
@pytest.mark.realmodel
@pytest.mark.parametrize(
    ("seed", "mutation", "k"),
    [
        ("layout_cdla", "value_info", 0),
        ("layout_cdla", "dangling_input", 0),
        ("ppocr_det", "dims", 1),
        ("ppocr_det", "byte_flip", 0),
        ("common_det", "opsets", 0),
        ("common_det", "arity", 2),
    ],
    ids=lambda v: str(v),
)
def test_damaged_real_model(seed, mutation, k, tmp_path, real_model):
    real_model(seed)  # fetched into the cache
    path = make_case(seed, mutation, k, tmp_path)
    assert check_case(path, tmp_path, pipelines=["default", "tensorrt"]) == []
