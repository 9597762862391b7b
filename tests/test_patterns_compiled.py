"""Compiled matchers: every target of every built-in rule finds the same matches, in the same
order and with the same bindings, as the generic matcher that `--explain` uses, less the ones
whose rule checks would refuse a non-constant operand (the compiled matcher refuses them first)."""

from __future__ import annotations

import pytest

from graphopt.ir import Graph, load_model
from graphopt.patterns import rule_set
from graphopt.patterns.compiled import compiled
from graphopt.patterns.engine import Facts, Match, Matcher
from tests.fusion_models import build


def _key(m: Match) -> tuple:
    return (
        list(m.tensors.items()),
        [(i, n.name) for i, n in m.nodes.items()],
        list(m.attrs.items()),
        list(m.literal_sites),
    )


def _copies(generic: Matcher, rule, pattern, node) -> list[Match]:
    out = []
    for m in generic.matches(rule, pattern, node):  # one live Match: copy as it goes
        copy = Match(rule, pattern, m.graph, m.facts)
        copy.tensors, copy.nodes = dict(m.tensors), dict(m.nodes)
        copy.attrs, copy.literal_sites = dict(m.attrs), list(m.literal_sites)
        out.append(copy)
    return out


def _collect(found: list):
    def accept(m: Match) -> bool:
        found.append(_key(m))
        return False  # keep going: every match

    return accept


def _has_variable_constant(rule, graph: Graph, m: Match) -> bool:
    return any(m.tensors.get(v) and not graph.is_constant(m.tensors[v]) for v in rule.constant_vars)


def _all_matches(graph: Graph) -> tuple[list, list, int]:
    """(generic matches the rule's constant checks would not refuse, compiled matches, anchors
    the compiled screen rejected)."""
    facts = Facts(graph)
    generic = Matcher(graph, facts, thorough=True)
    want, got, screened = [], [], 0
    for rule in rule_set():
        for pattern in rule.targets:
            target = compiled(rule, pattern)
            for node in list(graph.nodes.values()):
                if node.op_type != pattern.root.op:
                    continue
                matches = _copies(generic, rule, pattern, node)
                expected = [_key(m) for m in matches if not _has_variable_constant(rule, graph, m)]
                found: list = []
                if target.plausible(graph, node):
                    target.search(rule, graph, facts, node, _collect(found))
                else:
                    screened += 1
                want.append((rule.name, node.name, expected))
                got.append((rule.name, node.name, found))
    return want, got, screened


SHAPES = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,4,8,8] x, float[4] s, float[4] b, float[4] mu, float[4] v) => (float[1,4,8,8] y,
   float[1,4,8,8] z, float[1,4,8,8] q, float[1,4,8,8] u) {
  w = Constant <value = float[4,4,1,1] {1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1}> ()
  c = Conv(x, w)
  y = BatchNormalization(c, s, b, mu, v)
  three = Constant <value = float {3.0}> ()
  six = Constant <value = float {6.0}> ()
  zero = Constant <value = float {0.0}> ()
  a = Add(x, three)
  r = Clip(a, zero, six)
  m = Mul(x, r)
  z = Div(m, six)
  t = Mul(z, z)
  k = Mul(t, six)
  q = Mul(k, three)
  sg = Sigmoid(x)
  u = Mul(sg, x)
}"""


def test_compiled_matches_equal_generic_on_small_graph():
    graph = Graph(build(SHAPES))
    want, got, _ = _all_matches(graph)
    assert got == want
    assert sum(1 for *_, found in got if found) >= 4  # BN fold, HardSwish forms, SiLU, Mul chain


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["layout_cdla", "ppocr_det", "common_det"])
def test_compiled_matches_equal_generic_on_real_models(real_model, name):
    graph = Graph(load_model(str(real_model(name))))
    want, got, screened = _all_matches(graph)
    assert got == want
    assert screened > 0
