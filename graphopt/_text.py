"""Wording shared by the commands and the libraries' reports."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def counted(n: int, noun: str) -> str:
    """`1 node`, `2 nodes`, `0 nodes`: a count and its noun in the number it takes (the reports
    said "1 nodes", "1 feeds", "1 models measured"). Regular plurals only."""
    return f"{n} {noun}{'s' * (n != 1)}"


def type_name(elem_type: int, *, lower: bool = True) -> str:
    """The name of ONNX element type `elem_type` ("float", "int64"; as onnx spells it where not
    `lower`), or "type N" for a number ONNX does not define (a damaged file): onnx's
    `DataType.Name` raised a ValueError there, a traceback where a message was being made."""
    import onnx

    try:
        name = onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type {elem_type}"
    return name.lower() if lower else name


def fresh_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_1`, `name_2`, ... the first that `taken` lacks; added to `taken`."""
    candidate, k = name, 1
    while candidate in taken:
        candidate = f"{name}_{k}"
        k += 1
    taken.add(candidate)
    return candidate


def not_utf8(error: UnicodeDecodeError) -> str:
    """ "<line>: not UTF-8 text: byte 0x.. at column <c>; save it as UTF-8" for the bytes of a
    text file that `error` refused (it names a byte position, no line)."""
    data, at = error.object, error.start
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    return f"{line}: not UTF-8 text: byte 0x{data[at]:02x} at column {column}; save it as UTF-8"


def shown(value: str | os.PathLike[str]) -> str:
    """A value the user gave (a path, an option's text, a sample's name) as a one-line error
    shows it: as given, or quoted and escaped as `repr` writes it where it holds a character that
    is not printable (`--prefix 'a\\nb'`: a newline in it made the error two lines)."""
    text = os.fspath(value)
    return text if text.isprintable() else repr(text)


def escaped(text: str) -> str:
    """`text` with each character that is not printable escaped as `repr` (and so `shown`)
    writes it, without quotes: for a line made elsewhere that holds a model's strings
    (TensorRT check findings, onnxruntime's errors), where a newline in a dim param, a domain
    or a node name split the line. Printable text is left as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def model_strings_escaped(text: str, model: onnx.ModelProto) -> str:
    """`text` (another program's message about `model`) with each of the model's node, tensor,
    op type and domain names that is not printable, where it occurs, escaped (`escaped`): the
    message's own line breaks stay, and cutting it to its first line no longer cuts a name.
    (Also the dim params of inputs, outputs and value_info, and the names in the model's local
    functions; a name that is not UTF-8 in the file, which protobuf hands over as bytes, is
    not text the message can hold as such, and is left.)"""
    names: set[str | bytes] = set()
    graphs = [model.graph]
    nodes = [node for function in model.functions for node in function.node]
    for function in model.functions:
        names.update((function.name, function.domain, *function.input, *function.output))
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            nodes.extend(graph.node)
            for values in (graph.input, graph.output, graph.value_info):
                names.update(v.name for v in values)
                names.update(d.dim_param for v in values for d in v.type.tensor_type.shape.dim)
            names.update(t.name for t in graph.initializer)
            continue
        node = nodes.pop()
        names.update((node.name, node.op_type, node.domain, *node.input, *node.output))
        for attribute in node.attribute:  # If/Loop/Scan bodies
            graphs.extend([attribute.g] if attribute.HasField("g") else attribute.graphs)
    return names_escaped(text, names)


def names_escaped(text: str, names: Iterable[str | bytes]) -> str:
    """`text` with each of `names` that is not printable, where it occurs, escaped
    (`escaped`), the longest first (a name inside another is not escaped twice); bytes and
    printable names are left."""
    unprintable = {n for n in names if isinstance(n, str) and n and not n.isprintable()}
    for name in sorted(unprintable, key=lambda n: (-len(n), n)):
        text = text.replace(name, escaped(name))
    return text


def escaped_name(name: str, special: str) -> str:
    """`name` as a flag that takes backslash escapes reads it back (`split_escaped`): a
    backslash written before each backslash and each character of `special`."""
    return "".join("\\" + c if c == "\\" or c in special else c for c in name)


def escaped_fields(text: str, separators: str, *, repeat: bool = False) -> list[str]:
    """`text` split at the separators, in turn (`separators` ":=" splits 'I:NAME=MERGED' at
    its first ':' and at the first '=' after it, the rest one field; `repeat` splits at every
    one of a single separator, keeping empty fields), with the escapes resolved (as every name
    list reads them, `commands._common.comma_list`): a backslash before a separator or a
    backslash is that character, one before anything else (or at the end) itself. 'a\\=b' is
    the field 'a=b'."""
    special = {*separators, "\\"}
    fields: list[str] = []
    field: list[str] = []
    following_separators = iter(separators)
    separator = next(following_separators, None)
    chars = iter(text)
    for c in chars:
        if c == "\\":
            following = next(chars, "")
            field.append(following if following in special else c + following)
        elif c == separator:
            fields.append("".join(field))
            field = []
            if not repeat:
                separator = next(following_separators, None)
        else:
            field.append(c)
    fields.append("".join(field))
    return fields


def split_escaped(
    text: str, separator: str, special: str, *, last: bool = False
) -> tuple[str, str] | None:
    """`text` cut at its first (`last`: its last) `separator` that no backslash escapes: the
    part before with its escapes resolved, the part after as written; None where every
    `separator` is escaped, or there is none. A backslash before `separator`, a character of
    `special` or a backslash stands for that character; one before anything else (or at the
    end) is itself, as `commands._common.comma_list` reads a name list. 'a\\:b:1x3' cut at
    ':' is ('a:b', '1x3')."""
    special += separator
    kept: list[str] = []
    cut: tuple[int, int] | None = None  # (characters kept before it, where the rest starts)
    at = 0
    while at < len(text):
        c = text[at]
        following = text[at + 1 : at + 2]
        if c == "\\" and following and (following == "\\" or following in special):
            kept.append(following)
            at += 2
            continue
        if c == separator:
            cut = (len(kept), at + 1)
            if not last:
                break
        kept.append(c)
        at += 1
    if cut is None:
        return None
    return "".join(kept[: cut[0]]), text[cut[1] :]
