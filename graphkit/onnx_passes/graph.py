"""One index over an ``onnx.GraphProto`` (constants, producers, consumers, unique names) and the
cleanup that passes leave to the runner: dead-node removal and a stable topological sort, both
recursing into subgraphs (Loop/If/Scan bodies) like onnx-graphsurgeon's
``Graph.cleanup(recurse_subgraphs=True)``.

numpy and onnx are imported inside the functions: listing the passes stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# what a node reads, subgraphs included: below this module and onnx_weights, which both need it
from graphkit.onnx_reads import node_reads, outer_reads, subgraphs

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "GraphIndex",
    "attribute",
    "cleanup",
    "metadata_int",
    "metadata_ints",
    "node_reads",
    "onehot_depth",
    "outer_reads",
    "remove_dead_nodes",
    "subgraphs",
    "topological_sort",
]


class GraphIndex:
    """Read-only indexes of one graph; rebuild after editing.

    A node counts as a consumer of a name when it reads it as an input or when one of its
    subgraphs reads it from the outer scope.
    """

    def __init__(self, graph):
        self.graph = graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.producer = {}
        self.consumers: dict[str, list] = {}
        self._const_nodes = {}
        for node in graph.node:
            for out in node.output:
                if out:
                    self.producer[out] = node
            for name in node_reads(node):
                self.consumers.setdefault(name, []).append(node)
            if node.op_type == "Constant" and len(node.attribute) == 1:
                self._const_nodes[node.output[0]] = node.attribute[0]
        self.graph_inputs = [i for i in graph.input if i.name not in self.initializers]
        self.graph_outputs = {o.name for o in graph.output}
        self.names = set(self.producer) | set(self.initializers) | {i.name for i in graph.input}
        self.names |= {n.name for n in graph.node}

    def _tensor(self, name: str):
        """The TensorProto behind an initializer or a ``Constant(value=...)`` node, else None."""
        t = self.initializers.get(name)
        if t is not None:
            return t
        attr = self._const_nodes.get(name)
        return attr.t if attr is not None and attr.name == "value" else None

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor that is an initializer or a Constant node's output, else None."""
        from onnx import helper, numpy_helper

        t = self._tensor(name)
        if t is not None:
            from onnx import TensorProto

            if t.data_location == TensorProto.EXTERNAL:  # held by the export running now
                from graphkit.onnx_weights import external_array

                return external_array(t)
            return numpy_helper.to_array(t)
        attr = self._const_nodes.get(name)
        if attr is None or attr.name not in (
            "value_int",
            "value_ints",
            "value_float",
            "value_floats",
        ):
            return None
        import numpy as np

        dtype = np.int64 if attr.name.startswith("value_int") else np.float32
        return np.asarray(helper.get_attribute_value(attr), dtype)

    def constant_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of a constant tensor without reading its data (which may be external)."""
        t = self._tensor(name)
        return None if t is None else tuple(t.dims)

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


def onehot_depth(index: GraphIndex, node) -> int | None:
    """A OneHot's constant depth as a positive int, or None where it is not one.

    The depth may be an initializer that the model's metadata or a hostile file fills with NaN,
    nothing, a fraction or a negative number: such a OneHot has no vocabulary graphkit can use.
    """
    import numpy as np

    if len(node.input) < 2:
        return None
    try:
        depth = index.constant(node.input[1])
    except Exception:  # an unreadable tensor (wrong byte count for its dims, say)
        return None
    if depth is None:
        return None
    flat = np.asarray(depth).reshape(-1)
    if flat.size != 1 or flat.dtype.kind not in "iuf":
        return None
    value = flat[0]
    if not np.isfinite(value) or value != np.trunc(value) or not 1 <= value < 2**62:
        return None
    return int(value)


def metadata_int(text: str) -> int | None:
    """A metadata value graphkit wrote as an int: ASCII digits only, at most
    ``graphkit.limits.MAX_METADATA_DIGITS`` of them (``str.isdigit`` takes '²', which ``int``
    refuses, and ``int`` refuses 5000 digits); None for anything else."""
    import re

    from graphkit.limits import MAX_METADATA_DIGITS

    if re.fullmatch(f"[0-9]{{1,{MAX_METADATA_DIGITS}}}", text, re.ASCII) is None:
        return None
    return int(text)


def metadata_ints(model, prefix: str) -> dict[str, int]:
    """``{rest of key: value}`` of the model's metadata entries whose key starts with
    ``prefix`` and whose value is an int graphkit wrote (see ``metadata_int``)."""
    found = {}
    for p in model.metadata_props:
        if p.key.startswith(prefix):
            value = metadata_int(p.value)
            if value is not None:
                found[p.key[len(prefix) :]] = value
    return found


def attribute(node, name: str, default=None):
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def remove_dead_nodes(graph, recurse_subgraphs: bool = True) -> int:
    """Drop nodes that no graph output needs, and initializers nobody reads. Returns nodes removed.

    Liveness is one backward walk from the outputs; a name read inside a subgraph keeps its
    producer alive. Subgraphs are cleaned first, so that outer nodes only their dead parts
    read go too. Graph inputs are never removed (they are the model's interface).
    """
    removed = 0
    if recurse_subgraphs:
        for node in graph.node:
            for sub in subgraphs(node):
                removed += remove_dead_nodes(sub)
    nodes = list(graph.node)
    reads = [node_reads(node) for node in nodes]
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    needed = [o.name for o in graph.output]
    live: set[int] = set()
    used: set[str] = set(needed)
    while needed:
        i = producer.get(needed.pop())
        if i is None or i in live:
            continue
        live.add(i)
        used |= reads[i]
        needed.extend(reads[i])
    if len(live) != len(nodes):
        del graph.node[:]
        graph.node.extend(node for i, node in enumerate(nodes) if i in live)
        removed += len(nodes) - len(live)
    inputs = {i.name for i in graph.input}
    keep = [t for t in graph.initializer if t.name in used or t.name in inputs]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


def topological_sort(graph, recurse_subgraphs: bool = True) -> bool:
    """Reorder nodes so that everything a node reads, its subgraphs' reads included, comes first.

    Stable: among nodes that are ready, the one that came first stays first, so a sorted graph
    keeps its order. On a cycle the graph is left as it was (the checker will say why) and
    False is returned.
    """
    import heapq

    if recurse_subgraphs:
        for node in graph.node:
            for sub in subgraphs(node):
                topological_sort(sub)
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    users: dict[int, list[int]] = {}
    remaining = []
    for i, node in enumerate(nodes):
        deps = {producer[name] for name in node_reads(node) if producer.get(name, i) != i}
        remaining.append(len(deps))
        for d in deps:
            users.setdefault(d, []).append(i)
    ready = [i for i, n in enumerate(remaining) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users.get(i, []):
            remaining[j] -= 1
            if remaining[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        return False
    if order != list(range(len(nodes))):
        del graph.node[:]
        graph.node.extend(nodes[i] for i in order)
    return True


def cleanup(graph) -> int:
    """What ``run_passes`` does once after all passes: remove dead nodes, then sort. Recurses."""
    removed = remove_dead_nodes(graph)
    topological_sort(graph)
    return removed
