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
            used |= _subgraph_reads(node)  # Loop/If bodies read outer names
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


def _subgraph_reads(node) -> set[str]:
    """Names that a node's subgraphs (Loop/If/Scan bodies) read, at any depth."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in [attr.g] + list(attr.graphs):
            if sub is not None and sub.ByteSize():
                for inner in sub.node:
                    names.update(inner.input)
                    names |= _subgraph_reads(inner)
    return names


def topological_sort(graph) -> None:
    """Reorder nodes so that everything a node reads, its subgraphs included, comes first."""
    from collections import deque

    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    deps = []
    for i, node in enumerate(nodes):
        reads = set(node.input) | _subgraph_reads(node)
        deps.append({producer[name] for name in reads if name in producer and producer[name] != i})
    users: dict[int, list[int]] = {}
    for i, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(i)
    remaining = [len(ds) for ds in deps]
    ready = deque(i for i, n in enumerate(remaining) if n == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in users.get(i, []):
            remaining[j] -= 1
            if remaining[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):  # a cycle: leave the graph as it was, the checker will say why
        return
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)
