"""The one engine that rewrites graphs: it walks models, asks rules, and rebuilds what changed.

Functional models are rebuilt with ``keras.models.clone_model(clone_function=...)``,
which already handles node order, shared layers and masks passed as call
arguments; Sequential models get their layer list spliced. Nested models are
rewritten recursively. Untouched layers are reused as they are (weights and all):
the engine never reinitialises or copies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphkit import _keras_api
from graphkit.graph import GraphView
from graphkit.rules.base import Match, Refusal, Replacement, RewriteContext


@dataclass
class Finding:
    """One anchor layer the rules looked at."""

    path: str
    layer_class: str
    rule: str
    status: str  # "converted" | "repaired" | "normalised" | "refused" | "kept"
    reason: str | None = None
    new_layers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "class": self.layer_class,
            "rule": self.rule,
            "status": self.status,
            "reason": self.reason,
            "new_layers": self.new_layers,
            "notes": self.notes,
            "replaced": self.replaced,
        }


# Finding statuses of a layer that a rule rewrites (the others: "refused", "kept").
REWRITTEN = ("converted", "repaired", "normalised")


def is_graph_model(layer) -> bool:
    """Sequential or plain Functional: models whose graph we can read and rebuild."""
    import keras

    if isinstance(layer, keras.Sequential):
        return True
    functional = _keras_api.functional_class()
    return type(layer) in (functional, keras.Model) and isinstance(layer, functional)


def all_layer_names(model) -> set[str]:
    """Every name in ``model``: the model's, its layers' (nested too) and the operations'
    Keras put in its Functional graphs (``not_equal_1``, ``cast_2``...). New names must
    avoid all of them: a Functional graph refuses two operations of one name."""
    names = {model.name}
    for layer in _keras_api.flatten_layers(model):
        names.add(layer.name)
    names.update(_keras_api.operation_names(model))
    return names


class Plan:
    """What the rules decided for a whole model, all nesting levels included.

    For each layer, the rules that anchor on it are tried in registry order: ``check``
    first (cheap), then ``rewrite`` in a forked context, until one matches. A match whose
    replacements overlap ones already planned is rejected with the reason. ``dry_run``
    stops after ``check`` (what ``inspect`` uses): nothing is built.
    """

    def __init__(self, rules: list, ctx: RewriteContext | None = None, *, dry_run: bool = False):
        self.rules = rules
        self.ctx = ctx if ctx is not None else RewriteContext()
        self.dry_run = dry_run
        self.replacements: dict[int, Replacement] = {}
        self.planned_by: dict[int, str] = {}  # id(original layer) -> the finding's path
        self.findings: list[Finding] = []
        self.changed_models: set[int] = set()
        # the swaps made in place: (finding, container, places, old layer, new layer)
        self.swapped: list[tuple] = []
        self._seen: set[int] = set()

    def analyze(self, model, path: str = "") -> bool:
        """Fill the plan for ``model``; return True if anything inside it will change."""
        if id(model) in self._seen:
            return id(model) in self.changed_models
        self._seen.add(id(model))
        if not is_graph_model(model):
            self._hidden(model, path, container=model)  # top level: paths are attribute paths
            return False
        graph = GraphView(model)
        changed = False
        for layer in graph.layers:
            layer_path = f"{path}/{layer.name}" if path else layer.name
            if is_graph_model(layer):
                changed |= self.analyze(layer, layer_path)
                continue
            candidates = [r for r in self.rules if r.anchors(layer)]
            if not candidates:
                self._hidden(layer, layer_path, container=layer)
            elif id(layer) in self.replacements:  # replaced with another rule's anchor
                why = f"replaced by the rewrite of {self.planned_by[id(layer)]!r}"
                for rule in candidates:
                    self._found(layer, layer_path, rule, Refusal(why, severity="kept"))
            else:
                changed |= self._apply(candidates, layer, graph, layer_path)
        if changed:
            self.changed_models.add(id(model))
        return changed

    def _apply(self, candidates: list, layer, graph, layer_path: str) -> bool:
        refusals = []
        for rule in candidates:
            result = rule.check(layer, graph)
            if result is None and self.dry_run:
                covered = [layer.name, *rule.covers(layer, graph)]
                match = Match({}, [], replaced_names=covered, status=_status(rule))
                self._found(layer, layer_path, rule, match)
                return False
            if result is None:
                fork = self.ctx.fork()
                result = rule.rewrite(layer, graph, fork)
                if isinstance(result, Match):
                    result = self._overlap(result) or result
                if isinstance(result, Match):
                    self.ctx.commit(fork)
                    result.notes = list(result.notes) + fork.notes
                    for key in result.replacements:
                        self.planned_by[key] = layer_path
                    self.replacements.update(result.replacements)
                    self._found(layer, layer_path, rule, result)
                    return True
            refusals.append((rule, result))
        # One finding per layer: the first rule's verdict, with every reason.
        first_rule, first = refusals[0]
        reasons = "; ".join(dict.fromkeys(r.reason for _, r in refusals))
        severity = "refused" if any(r.severity == "refused" for _, r in refusals) else "kept"
        self._found(layer, layer_path, first_rule, Refusal(reasons, severity))
        return False

    def _overlap(self, match: Match) -> Refusal | None:
        taken = [self.planned_by[key] for key in match.replacements if key in self.replacements]
        if taken:
            return Refusal(f"it would replace layers that the rewrite of {taken[0]!r} replaces")
        return None

    def _found(self, layer, layer_path: str, rule, result: Match | Refusal) -> None:
        if isinstance(result, Refusal):
            self.findings.append(
                Finding(layer_path, type(layer).__name__, rule.name, result.severity, result.reason)
            )
            return
        self.findings.append(
            Finding(
                layer_path,
                type(layer).__name__,
                rule.name,
                result.status,
                None,
                list(result.new_layer_names),
                list(result.notes),
                list(result.replaced_names),
            )
        )

    def _hidden(self, layer, layer_path: str, container) -> None:
        """Anchors inside a custom (subclassed) layer or model: graph surgery cannot reach
        them, but a rule with ``swap`` replaces them in place, where the custom layer holds
        them (an attribute, a list item, a dict value); see ``graphkit.swaps``."""
        import keras

        refs = None
        for inner in _keras_api.flatten_layers(container):
            rules = [r for r in self.rules if r.anchors(inner)]
            if not rules:
                continue
            rule = next((r for r in rules if hasattr(r, "swap")), rules[0])
            if isinstance(container, keras.layers.Wrapper) or not hasattr(rule, "swap"):
                inner_path = _join(layer_path, _relative_path(container, inner))
                self._refuse_hidden(inner, inner_path, rule, container, layer_path)
                continue
            if refs is None:
                refs = [r for r in _keras_api.sublayer_refs(container) if not is_graph_model(r[0])]
            places = [(o, a, k) for o, a, k, held in refs if held is inner]
            if not places:
                inner_path = _join(layer_path, _relative_path(container, inner))
                self._refuse_hidden(inner, inner_path, rule, container, layer_path)
                continue
            inner_path = _attribute_path(refs, container, places[0], layer_path)
            result = self._swap(rule, inner, places, container, refs)
            if isinstance(result, Refusal):
                self.findings.append(
                    Finding(
                        inner_path, type(inner).__name__, rule.name, result.severity, result.reason
                    )
                )
                continue
            owner = type(places[0][0]).__name__
            finding = Finding(
                inner_path,
                type(inner).__name__,
                rule.name,
                _status(rule),
                None,
                [result.name if result is not None else inner.name],
                [_swap_note(owner, inner, result)],
                [inner.name],
            )
            self.findings.append(finding)
            if result is not None:
                self.swapped.append((finding, container, places, refs, inner, result))

    def _swap(self, rule, inner, places, container, refs):
        """The twin now in ``places`` (None in a dry run), or a Refusal."""
        from graphkit import swaps

        check = getattr(rule, "swap_check", None)
        if self.dry_run:
            return check(inner) if check is not None else None
        fork = self.ctx.fork()
        new = rule.swap(inner, fork)
        if isinstance(new, Refusal):
            return new
        self.ctx.commit(fork)
        for place in places:
            owner, attribute, key = place
            path = _attribute_path(refs, container, place, "")
            swaps.swap(container, path, owner, attribute, key, inner, new)
        return new

    def _refuse_hidden(self, inner, inner_path, rule, container, layer_path) -> None:
        self.findings.append(
            Finding(
                inner_path,
                type(inner).__name__,
                rule.name,
                # an optional rule (a repair) never makes a conversion fail
                "kept" if getattr(rule, "optional", False) else "refused",
                _hidden_reason(container, layer_path, type(inner).__name__),
            )
        )


def unswap(container, places, refs, old, new) -> None:
    """Undo a swap: ``old`` back where ``new`` was put (a twin the model never calls)."""
    from graphkit import swaps

    for place in places:
        owner, attribute, key = place
        path = _attribute_path(refs, container, place, "")
        swaps.swap(container, path, owner, attribute, key, new, old)


def _swap_note(owner: str, inner, result) -> str:
    from graphkit.layers.onehot_embedding import embedding_class

    new = type(result).__name__ if result is not None else "(twin)"
    head = f"attribute of custom {owner}: {type(inner).__name__} -> {new}, swapped in place"
    if result is not None and embedding_class(type(inner)) is type(result):
        return f"{head} (back to Keras' own layer: once none is left, {owner} saves as itself)"
    return (
        f"{head} (the saved file records it: it loads so with graphkit imported, and not at "
        "all without)"
    )


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _attribute_path(refs, container, place, layer_path: str) -> str:
    """``tok_pos/token_emb``, ``towers[0]/emb``: attribute names from ``container`` down."""
    from graphkit.swaps import attribute_path

    parents = {id(held): (owner, a, k) for owner, a, k, held in refs}
    owner, attribute, key = place
    parts = [attribute_path(attribute, key)]
    seen = set()
    while owner is not container and id(owner) in parents and id(owner) not in seen:
        seen.add(id(owner))
        owner, attribute, key = parents[id(owner)]
        parts.append(attribute_path(attribute, key))
    return "/".join([layer_path, *reversed(parts)]) if layer_path else "/".join(reversed(parts))


def _hidden_reason(container, layer_path: str, what: str) -> str:
    import keras

    kind = type(container).__name__
    if isinstance(container, keras.layers.Wrapper):
        return (
            f"inside wrapper {kind} {layer_path!r}: graphkit does not rewrite wrapped {what} layers"
        )
    return (
        f"inside custom {kind} {layer_path!r}: "
        "graph surgery cannot reach into a subclassed layer or model"
    )


def _relative_path(container, inner) -> str:
    """``inner``'s path below ``container``, from Keras' layer paths where available."""
    try:
        outer, own = container.path, inner.path
        if own.startswith(outer + "/"):
            return own[len(outer) + 1 :]
    except Exception:
        pass
    return inner.name


class Rebuilder:
    """Rebuilds the models a Plan changed; untouched layers and models are reused.

    Rebuilding calls layers again, and Keras names the operations it adds on the way (the
    mask ops: ``NotEqual``, ``Cast``, ``ExpandDims``, ``Any``...) from its session-wide
    counters. A model saved in a session where those counters had advanced holds such names
    (``not_equal_1``), which a fresh counter would give again: before rebuilding, every name
    of the model and every name the rules took is reserved in Keras' counters, and the
    rebuilt model's names join the context, so later phases and rules avoid them too.
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.cache: dict[int, Any] = {}
        self._depth = 0

    def rebuild(self, model):
        if id(model) not in self.plan.changed_models:
            return model
        if self._depth == 0:
            _keras_api.reserve_auto_names(all_layer_names(model) | self.plan.ctx.taken)
        self._depth += 1
        try:
            new_model = self._rebuild(model)
        finally:
            self._depth -= 1
        if self._depth == 0:
            self.plan.ctx.reserve(all_layer_names(new_model))
        return new_model

    def _rebuild(self, model):
        if id(model) not in self.cache:
            import keras

            if isinstance(model, keras.Sequential):
                self.cache[id(model)] = self._sequential(model)
            else:
                self.cache[id(model)] = self._functional(model)
        return self.cache[id(model)]

    def _substitute(self, layer):
        if id(layer) in self.plan.replacements:
            return self.plan.replacements[id(layer)]
        if is_graph_model(layer):
            return self.rebuild(layer)
        return layer

    def _functional(self, model):
        import keras

        # Replacement objects are callable: clone_model's plain call serves them too.
        return keras.models.clone_model(model, clone_function=self._substitute)

    def _sequential(self, model):
        import keras

        new_layers = []
        for layer in model.layers:
            sub = self._substitute(layer)
            if isinstance(sub, Replacement):
                new_layers.extend(sub.layers)
            else:
                new_layers.append(sub)
        own = _keras_api.sequential_layers_with_input(model)
        first = own[0] if own else None
        inputs = None
        if isinstance(first, keras.layers.InputLayer):
            inputs = keras.Input(
                batch_shape=first.batch_shape,
                dtype=_keras_api.input_layer_dtype(first),
                name=first.name,
            )
        elif model.built and getattr(model, "inputs", None):
            ref = model.inputs[0]
            inputs = keras.Input(batch_shape=ref.shape, dtype=ref.dtype)
        layers = ([inputs] if inputs is not None else []) + new_layers
        return keras.Sequential(layers, name=model.name, trainable=model.trainable)


def _status(rule) -> str:
    return {"repair": "repaired", "normalise": "normalised"}.get(rule.phase, "converted")


def rewrite(model, rules: list, ctx: RewriteContext | None = None) -> tuple[Any, Plan]:
    """Apply ``rules`` everywhere in ``model``; return the new model (or ``model``) and the plan.

    ``ctx`` carries the layer names taken across calls (one per conversion, all phases).
    """
    plan = Plan(rules, ctx if ctx is not None else RewriteContext(all_layer_names(model)))
    # Rules name their layers through ``ctx``; whatever Keras names while they build them
    # must not take a name of the model either.
    _keras_api.reserve_auto_names(all_layer_names(model) | plan.ctx.taken)
    plan.analyze(model)
    if id(model) not in plan.changed_models:
        return model, plan
    new_model = Rebuilder(plan).rebuild(model)
    return new_model, plan
