"""The contract every registered rule keeps, parametrised over the registry.

A new rule adds its two example models here (one it rewrites, one it must refuse);
a rule registered without them fails ``test_every_registered_rule_has_examples``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from graphkit.conversion import convert, repair
from graphkit.engine import Plan, all_layer_names
from graphkit.io import load_model, save_model
from graphkit.layers import OneHot
from graphkit.rules import RULES, RewriteContext, describe_rules
from tests.conftest import assert_within_ulps
from tests.rules.test_repair_time_distributed import PerSampleUnknown


def _tokens_input():
    return keras.Input((None,), dtype="int32", name="tokens")


def embedding_applies():
    keras.utils.set_random_seed(0)
    inp = _tokens_input()
    x = keras.layers.Embedding(12, 3, mask_zero=True, name="emb")(inp)
    x = keras.layers.GRU(4, name="gru")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x))


@keras.saving.register_keras_serializable(package="graphkit_tests")
class MyEmbedding(keras.layers.Embedding):
    pass


def embedding_refuses():
    inp = _tokens_input()
    return keras.Model(inp, MyEmbedding(12, 3, name="mine")(inp))


def onehot_applies():
    keras.utils.set_random_seed(1)
    inp = _tokens_input()
    x = OneHot(12, mask_zero=True, name="oh")(inp)
    x = keras.layers.Dense(3, activation="relu", name="proj")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(keras.layers.GRU(4)(x)))


def onehot_refuses():
    inp = _tokens_input()
    x = OneHot(12, name="oh")(inp)
    return keras.Model(inp, keras.layers.GlobalAveragePooling1D(name="bag")(x))


def td_applies():
    keras.utils.set_random_seed(2)
    inp = _tokens_input()
    x = keras.layers.Embedding(12, 3, name="emb")(inp)
    return keras.Model(inp, keras.layers.TimeDistributed(keras.layers.Dense(2), name="td")(x))


def td_refuses():
    inp = _tokens_input()
    x = keras.layers.Embedding(12, 3, name="emb")(inp)
    return keras.Model(inp, keras.layers.TimeDistributed(PerSampleUnknown(), name="td")(x))


def category_applies():
    keras.utils.set_random_seed(3)
    inp = _tokens_input()
    x = keras.layers.CategoryEncoding(12, output_mode="one_hot", name="cat")(inp)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x))


def category_refuses():
    inp = _tokens_input()
    return keras.Model(inp, keras.layers.CategoryEncoding(12, output_mode="multi_hot")(inp))


EXAMPLES = {
    # rule name: (model it rewrites, how to apply it, model it refuses)
    "repair_time_distributed": (td_applies, "repair", td_refuses),
    "categoryencoding_to_onehot": (category_applies, "embedding", category_refuses),
    "embedding_to_onehot": (embedding_applies, "onehot-dense", embedding_refuses),
    "onehot_to_embedding": (onehot_applies, "embedding", onehot_refuses),
}
RULE_NAMES = [rule.name for rule in RULES]


def test_every_registered_rule_has_examples_and_a_description():
    assert sorted(EXAMPLES) == sorted(RULE_NAMES)
    for row in describe_rules():
        assert (
            row["summary"] and row["target"] and row["phase"] in ("repair", "normalise", "convert")
        )


def _apply(model, how):
    if how == "repair":
        new, findings = repair(model)
        return new, findings
    report = convert(model, how)
    return report.model, report.findings


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_rewrites_its_example_exactly_with_unique_names_and_reloads_in_safe_mode(
    name, tmp_path
):
    make, how, _ = EXAMPLES[name]
    model = make()
    new, findings = _apply(model, how)
    mine = [f for f in findings if f.rule == name]
    assert mine and all(f.status in ("converted", "repaired") for f in mine)
    names = [layer.name for layer in new._flatten_layers(include_self=False, recursive=True)]
    assert len(names) == len(set(names))
    assert new.output_names == model.output_names
    save_model(new, tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")  # safe mode
    x = np.random.default_rng(3).integers(0, 12, size=(5, 7)).astype("int32")
    want = np.asarray(model(x))
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(new(x)))
    assert_within_ulps(new(x), want)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_refuses_its_counter_example_with_a_reason_and_builds_nothing(name):
    (rule,) = [r for r in RULES if r.name == name]
    _, _, make = EXAMPLES[name]
    model = make()
    plan = Plan([rule], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    assert plan.findings, "the counter-example holds no anchor of the rule"
    for f in plan.findings:
        assert f.status in ("refused", "kept") and f.reason and len(f.reason) > 10
    assert plan.replacements == {}


@pytest.mark.parametrize("name", RULE_NAMES)
def test_check_of_an_applicable_anchor_builds_no_layer(name):
    (rule,) = [r for r in RULES if r.name == name]
    make, _, _ = EXAMPLES[name]
    model = make()
    before = keras.backend.get_uid("graphkit_probe")
    plan = Plan([rule], RewriteContext(all_layer_names(model)), dry_run=True)
    plan.analyze(model)
    assert [f.status for f in plan.findings] in (["converted"], ["repaired"])
    assert plan.replacements == {}
    # no layer was created: Keras' uid counter for a fresh layer name moved by one only
    assert keras.backend.get_uid("graphkit_probe") == before + 1
