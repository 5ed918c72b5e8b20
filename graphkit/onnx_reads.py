"""What an ONNX node reads, the outer names its subgraphs (Loop/If/Scan bodies) read included.

A fact that both the pass graph index (``onnx_passes.graph``) and the export's weights
(``onnx_weights``: which initializers no node reads) need: it lives below both, so neither
imports the other for it. Pure protobuf walking; nothing is imported.
"""

from __future__ import annotations

from collections.abc import Iterator


def subgraphs(node) -> Iterator:
    """The graphs held by a node's attributes (a Loop or Scan body, If branches)."""
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def outer_reads(graph) -> set[str]:
    """Names that ``graph`` reads from an enclosing scope: read, at any depth, and not defined here.

    A name that a subgraph defines itself (its inputs, initializers, node outputs) shadows the
    outer one, so it is not an outer read.
    """
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    reads = {o.name for o in graph.output}
    for node in graph.node:
        reads |= node_reads(node)
        defined.update(node.output)
    return reads - defined - {""}


def node_reads(node) -> set[str]:
    """Everything a node needs: its inputs and the outer names its subgraphs read."""
    reads = {name for name in node.input if name}
    for sub in subgraphs(node):
        reads |= outer_reads(sub)
    return reads
