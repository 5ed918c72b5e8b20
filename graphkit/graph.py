"""A uniform read-only view of one level of a Sequential or Functional model's graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphkit import _keras_api

OUTPUT = "<model output>"


@dataclass
class CallSite:
    """One call of a layer: the rank of its main input and who consumes its outputs."""

    input_rank: int | None
    producer: Any  # layer producing the main (first) input, None for a model input
    consumers: list = field(default_factory=list)  # (layer or OUTPUT, is_main_input)
    input_shape: tuple | None = None  # of the main input, None axes unknown; None if unknown


class GraphView:
    """Layers of one model level, with their call sites, for rules to inspect."""

    def __init__(self, model):
        import keras

        self.model = model
        self.is_sequential = isinstance(model, keras.Sequential)
        self.sites: dict[int, list[CallSite]] = {}
        self.layers: list = []
        if self.is_sequential:
            self._read_sequential(model)
        else:
            self._read_functional(model)

    def _read_sequential(self, model) -> None:
        layers = list(model.layers)
        self.layers = layers
        try:
            rank = len(model.inputs[0].shape)
        except Exception:
            rank = None
        for i, layer in enumerate(layers):
            nxt = [(layers[i + 1], True)] if i + 1 < len(layers) else [(OUTPUT, True)]
            prev = layers[i - 1] if i else None
            try:
                shape = tuple(layer.input.shape)
            except Exception:
                shape = None
            self.sites.setdefault(id(layer), []).append(CallSite(rank, prev, nxt, shape))
            rank = _output_rank(layer, rank)

    def _read_functional(self, model) -> None:
        import keras

        own_nodes = [node for nodes in _keras_api.nodes_by_depth(model).values() for node in nodes]
        by_output: dict[int, CallSite] = {}
        order = []
        for node in own_nodes:
            op = node.operation
            if op is None or node.is_input or isinstance(op, keras.layers.InputLayer):
                continue
            inputs = list(node.input_tensors)
            main = inputs[0] if inputs else None
            producer = _keras_api.producer(main) if main is not None else None
            if isinstance(producer, keras.layers.InputLayer):
                producer = None
            site = CallSite(
                len(main.shape) if main is not None else None,
                producer,
                input_shape=tuple(main.shape) if main is not None else None,
            )
            self.sites.setdefault(id(op), []).append(site)
            for t in node.outputs:
                by_output[id(t)] = site
            if op not in order:
                order.append(op)
        for node in own_nodes:
            op = node.operation
            if op is None or node.is_input:
                continue
            for j, t in enumerate(node.input_tensors):
                site = by_output.get(id(t))
                if site is not None:
                    site.consumers.append((op, j == 0))
        for t in model.outputs:
            site = by_output.get(id(t))
            if site is not None:
                site.consumers.append((OUTPUT, True))
        self.layers = [op for op in order if isinstance(op, keras.layers.Layer)]

    def call_sites(self, layer) -> list[CallSite]:
        return self.sites.get(id(layer), [])

    def is_output(self, layer) -> bool:
        """Is one of ``layer``'s outputs a model output? (Then the model's output name is its name.)"""
        return any(
            consumer is OUTPUT for site in self.call_sites(layer) for consumer, _ in site.consumers
        )


def _output_rank(layer, rank):
    try:
        shape = layer.output.shape
        return len(shape)
    except Exception:
        pass
    if rank is None:
        return None
    try:
        return len(layer.compute_output_shape((None,) * rank))
    except Exception:
        return None
