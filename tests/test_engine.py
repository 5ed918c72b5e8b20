"""The engine: rules tried in order until one matches, overlaps refused, names transactional."""

from __future__ import annotations

import keras
import numpy as np

from graphkit.conversion import convert
from graphkit.engine import Plan, all_layer_names, rewrite
from graphkit.layers import OneHot
from graphkit.rules import PHASES, RULES, Chain, Match, Refusal, RewriteContext, phases
from graphkit.rules.embedding_to_onehot import EmbeddingToOneHot


def embedding_model():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(6, 2, name="emb")(inp)
    return keras.Model(inp, keras.layers.Dense(1, name="head")(x))


class FakeRule:
    """A rule on Embeddings whose verdict the test decides."""

    targets = ("onehot-dense",)
    phase = "convert"
    source = "embedding"
    anchor_label = "Embedding"
    optional = False
    inspect = {"label": "Embedding", "role": "embedding", "yes": "yes", "becomes": "", "no": "no"}
    exact = True

    def __init__(self, name, refuse_check=None, refuse_rewrite=None, replace_extra=()):
        self.name, self.summary = name, name
        self.refuse_check, self.refuse_rewrite = refuse_check, refuse_rewrite
        self.replace_extra = replace_extra
        self.rewrites = 0

    def anchors(self, layer):
        return isinstance(layer, keras.layers.Embedding)

    def index_range(self, layer):
        return None

    def covers(self, layer, graph):
        return []

    def check(self, layer, graph):
        return Refusal(self.refuse_check) if self.refuse_check else None

    def rewrite(self, layer, graph, ctx):
        self.rewrites += 1
        name = ctx.unique_name(f"{layer.name}_{self.name}")
        ctx.release(layer.name)
        if self.refuse_rewrite:
            return Refusal(self.refuse_rewrite)
        replacements = {id(layer): Chain([keras.layers.Identity(name=name)])}
        for other in self.replace_extra:
            replacements[id(graph.model.get_layer(other))] = Chain([])
        return Match(replacements, [name], replaced_names=[layer.name])


def test_rules_are_tried_in_order_until_one_matches():
    first, second = FakeRule("first", refuse_check="not mine"), FakeRule("second")
    plan = Plan([first, second], RewriteContext(all_layer_names(embedding_model())))
    plan.analyze(embedding_model())
    assert first.rewrites == 0 and second.rewrites == 1
    assert [(f.rule, f.status) for f in plan.findings] == [("second", "converted")]


def test_every_reason_is_reported_when_no_rule_matches():
    rules = [FakeRule("a", refuse_check="reason a"), FakeRule("b", refuse_rewrite="reason b")]
    plan = Plan(rules, RewriteContext())
    plan.analyze(embedding_model())
    assert [(f.rule, f.status, f.reason) for f in plan.findings] == [
        ("a", "refused", "reason a; reason b")
    ]
    assert plan.replacements == {}


def test_a_late_refusal_leaves_the_names_as_they_were():
    model = embedding_model()
    ctx = RewriteContext(all_layer_names(model))
    before = set(ctx.taken)
    Plan([FakeRule("late", refuse_rewrite="changed my mind")], ctx).analyze(model)
    assert ctx.taken == before  # neither the reserved name nor the released one leaked


def test_a_match_overlapping_a_planned_replacement_is_refused_with_the_reason():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    a = keras.layers.Embedding(6, 2, name="a")(inp)
    b = keras.layers.Embedding(6, 2, name="b")(inp)
    model = keras.Model(inp, keras.layers.Add(name="sum")([a, b]))
    greedy = FakeRule("greedy", replace_extra=("sum",))
    plan = Plan([greedy], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    statuses = {f.path: (f.status, f.reason) for f in plan.findings}
    converted = [p for p, (s, _) in statuses.items() if s == "converted"]
    refused = [(p, r) for p, (s, r) in statuses.items() if s == "refused"]
    assert len(converted) == 1 and len(refused) == 1
    assert "would replace layers that the rewrite of" in refused[0][1]


def test_dry_run_checks_only_and_builds_nothing():
    model = embedding_model()
    rule = EmbeddingToOneHot()
    plan = Plan([rule], RewriteContext(all_layer_names(model)), dry_run=True)
    plan.analyze(model)
    assert [(f.path, f.status, f.replaced) for f in plan.findings] == [
        ("emb", "converted", ["emb"])
    ]
    assert plan.replacements == {} and plan.changed_models == set()


def test_rewrite_returns_the_model_itself_when_nothing_applies():
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    same, plan = rewrite(model, list(RULES))
    assert same is model and plan.findings == []


def test_phases_run_in_order_and_feed_each_other():
    order = [phase[0].phase for phase in phases("embedding")]
    assert all(len({r.phase for r in phase}) == 1 for phase in phases("embedding"))
    assert order == [p for p in PHASES if p in order] and order[-1] == "convert"
    # a Keras TimeDistributed consumer is repaired first, then folded into the Embedding
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = OneHot(7, name="oh")(inp)
    x = keras.layers.TimeDistributed(keras.layers.Dense(3), name="proj")(x)
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(x))
    report = convert(model, "embedding")
    assert [(f.rule, f.status) for f in report.findings] == [
        ("repair_time_distributed", "repaired"),
        ("onehot_to_embedding", "converted"),
    ]
    assert type(report.model.get_layer("proj_embedding")) is keras.layers.Embedding
    x = np.array([[1, 6, 0]], "int32")
    np.testing.assert_array_equal(np.asarray(report.model(x)), np.asarray(model(x)))


def test_names_released_by_a_late_refusal_are_not_given_to_another_layer():
    """OneHotToEmbedding releases the group's names, then can refuse (a folded table that
    overflows): those names must stay taken, or a later group could reuse them."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((None,), dtype="int32", name="tokens")
    other = keras.layers.Dense(2, name="x_dense_dense")(OneHot(5, name="x_dense_onehot")(inp))
    onehot = OneHot(5, name="x_onehot")(inp)
    fine = keras.layers.Dense(2, name="x_dense")(onehot)  # folds: its names are released...
    big = keras.layers.Dense(2, activation="exponential", name="x_big")
    overflow = big(onehot)  # ...then this one refuses: the group stays as it was
    model = keras.Model(inp, keras.layers.Concatenate(name="cat")([other, fine, overflow]))
    big.kernel.assign(np.full((5, 2), 100.0, "float32"))  # exp(100) overflows float32
    report = convert(model, "embedding")
    statuses = [(f.path, f.status) for f in report.findings]
    assert statuses == [("x_onehot", "kept"), ("x_dense_onehot", "converted")]
    names = [layer.name for layer in report.model.layers]
    assert len(names) == len(set(names)) and "x_dense" in names
    (new,) = report.converted[0].new_layers
    assert new == "x_dense_1"  # "x_dense" stays the kept layer's


def test_a_layer_already_replaced_by_another_match_is_reported():
    inp = keras.Input((None,), dtype="int32", name="tokens")
    a = keras.layers.Embedding(6, 2, name="a")(inp)
    b = keras.layers.Embedding(6, 2, name="b")
    model = keras.Model(inp, keras.layers.Add()([a, b(inp)]))
    greedy = FakeRule("greedy", replace_extra=("b",))
    plan = Plan([greedy], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    kept = [f for f in plan.findings if f.status == "kept"]
    assert len(kept) == 1 and "replaced by the rewrite of" in kept[0].reason
