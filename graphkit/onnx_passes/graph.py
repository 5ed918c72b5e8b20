"""Small helpers over an ``onnx.GraphProto``: constants, consumers, unique names, dead-code removal."""

from __future__ import annotations

import numpy as np


class GraphIndex:
    """Read-only indexes of one graph; rebuild after editing."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.producer = {}
        self.consumers: dict[str, list] = {}
        self._const_nodes = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self._const_nodes[node.output[0]] = attr.t
        self.graph_outputs = {o.name for o in graph.output}
        self._numpy_helper = numpy_helper
        self.names = set(self.producer) | set(self.initializers) | {i.name for i in graph.input}
        self.names |= {n.name for n in graph.node}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor that is an initializer or a Constant node's output, else None."""
        t = self.initializers.get(name)
        if t is None:
            t = self._const_nodes.get(name)
        return None if t is None else self._numpy_helper.to_array(t)

    def only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    def unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name


def attribute(node, name: str, default=None):
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def remove_dead_nodes(graph) -> int:
    """Drop nodes whose outputs nobody uses, and initializers nobody reads. Returns nodes removed."""
    removed = 0
    while True:
        used = {o.name for o in graph.output}
        for node in graph.node:
            used.update(node.input)
            for attr in node.attribute:  # subgraphs (Loop/If bodies) read outer names
                for sub in [attr.g] + list(attr.graphs):
                    if sub is not None and sub.ByteSize():
                        for n in sub.node:
                            used.update(n.input)
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
        removed += len(dead)
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


def topological_sort(graph) -> None:
    """Reorder nodes so that every input is produced before it is read (ONNX requires it)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    outer = set()
    for node in pending:  # names read inside subgraphs count as inputs of their node
        for attr in node.attribute:
            for sub in [attr.g] + list(attr.graphs):
                if sub is not None and sub.ByteSize():
                    for n in sub.node:
                        outer.update(n.input)
    produced = {o for n in pending for o in n.output}
    while pending:
        progress = False
        rest = []
        for node in pending:
            needs = [i for i in node.input if i not in available]
            if not needs:
                ordered.append(node)
                available.update(node.output)
                progress = True
            else:
                rest.append(node)
        pending = rest
        if not progress:
            ordered.extend(pending)  # leave what cannot be ordered (names from outer scopes)
            break
    del outer, produced
    del graph.node[:]
    graph.node.extend(ordered)
