"""`outer_references`: what a branch reads from the outer scope, through nested branches, with
omitted optional inputs and names the branch defines itself left out."""

from __future__ import annotations

import onnx
import onnx.parser

from graphopt.ir.graph import outer_references, subgraphs


def test_outer_references_of_nested_branches():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (bool c, float[2] x, float[2] w, float[2] v) => (float[2] y) {
            y = If(c) <
                then_branch = t_g () => (float[2] o) {
                    a = Clip(x, , )
                    o = If(c) <
                        then_branch = n1 () => (float[2] p) { p = Add(a, w) },
                        else_branch = n2 () => (float[2] q) { q = Neg(a) }
                    >
                },
                else_branch = e_g () => (float[2] v) { }
            >
        }
        """
    )
    then_branch, else_branch = subgraphs(model.graph.node[0])
    # a is defined in the branch; "" (omitted Clip bounds) is no name; w comes from the
    # nested branch; an output defined by no node (v) is read from the outer scope
    assert outer_references(then_branch) == {"c", "x", "w"}
    assert outer_references(else_branch) == {"v"}
