"""The contract every registered rule keeps, parametrised over the registry.

Each rule's own test module, ``tests/rules/test_<rule name>.py``, declares
``CONTRACT = (make_model_it_rewrites, how, make_model_it_refuses)``, where ``how`` is a
``--to`` target or ``"repair"``; a rule registered without it fails here. Nothing in this
file names a rule.
"""

from __future__ import annotations

import importlib

import keras
import numpy as np
import pytest

from graphkit.backends import KerasBackend
from graphkit.conversion import convert, repair
from graphkit.engine import REWRITTEN, Plan, all_layer_names
from graphkit.io import load_model, save_model
from graphkit.rules import RULES, RewriteContext, listing
from graphkit.verification import synthesize
from tests.conftest import assert_within_ulps

RULE_NAMES = [rule.name for rule in RULES]


def contract(name: str):
    module = importlib.import_module(f"tests.rules.test_{name}")
    return module.CONTRACT


def rule_named(name: str):
    (rule,) = [r for r in RULES if r.name == name]
    return rule


def test_every_registered_rule_has_its_contract_and_a_description():
    for name in RULE_NAMES:
        make, how, refuses = contract(name)
        assert callable(make) and callable(refuses) and how
    for row in listing().rules:
        assert (
            row["summary"] and row["targets"] and row["phase"] in ("repair", "normalise", "convert")
        )


def _apply(model, how):
    if how == "repair":
        return repair(model)
    report = convert(model, how)
    return report.model, report.findings


def _inputs(model):
    """Random inputs from the model's signature, indices inside the registry's ranges."""
    return next(synthesize(KerasBackend(model).inputs, 5, 5, 7, seed=3))


def _call(model, batch):
    feed = [batch[t.name] for t in model.inputs]
    return np.asarray(model(feed if len(feed) > 1 else feed[0], training=False))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_rewrites_its_example_with_unique_names_reloads_and_predicts_the_same(name, tmp_path):
    make, how, _ = contract(name)
    model = make()
    new, findings = _apply(model, how)
    mine = [f for f in findings if f.rule == name]
    assert mine and all(f.status in REWRITTEN for f in mine)
    names = [layer.name for layer in new._flatten_layers(include_self=False, recursive=True)]
    assert len(names) == len(set(names))
    assert new.output_names == model.output_names
    save_model(new, tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")  # safe mode
    batch = _inputs(model)
    np.testing.assert_array_equal(_call(back, batch), _call(new, batch))
    if rule_named(name).exact:
        np.testing.assert_array_equal(_call(new, batch), _call(model, batch))
    else:
        assert_within_ulps(_call(new, batch), _call(model, batch))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_refuses_its_counter_example_with_a_reason(name):
    _, _, make = contract(name)
    model = make()
    plan = Plan([rule_named(name)], RewriteContext(all_layer_names(model)))
    plan.analyze(model)
    assert plan.findings, "the counter-example holds no anchor of the rule"
    for f in plan.findings:
        assert f.status in ("refused", "kept") and f.reason and len(f.reason) > 10
    assert plan.replacements == {}


@pytest.mark.parametrize("name", RULE_NAMES)
def test_check_builds_no_layer(name, monkeypatch):
    make, _, _ = contract(name)
    model = make()
    built = []
    original = keras.layers.Layer.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__init__", counting)
    plan = Plan([rule_named(name)], RewriteContext(all_layer_names(model)), dry_run=True)
    plan.analyze(model)
    assert [f.status for f in plan.findings if f.rule == name][:1] and built == []
    # ...and the same counting sees a rewrite build its new layers (the test can fail)
    full = Plan([rule_named(name)], RewriteContext(all_layer_names(model)))
    full.analyze(model)
    assert bool(built) == any(f.new_layers for f in full.findings)
