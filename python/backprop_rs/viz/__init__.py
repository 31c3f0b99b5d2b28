"""Seeing backpropagation work: the graph (:func:`graph`), the learning measured while it
happens (:class:`Monitor`), how much each weight contributed to the loss (:func:`attribute`,
:func:`attribute_input`; loss change allocation in :mod:`backprop_rs.viz.lca`), and a
self-contained HTML report of one prediction (:mod:`backprop_rs.viz.report`)."""

from .graph import Graph, GraphNode, dot_available, graph
from .trace import ModuleTrace, trace

__all__ = ["Graph", "GraphNode", "ModuleTrace", "dot_available", "graph", "trace"]
