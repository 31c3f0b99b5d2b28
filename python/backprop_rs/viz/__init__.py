"""Seeing backpropagation work: the graph (:func:`graph`), the learning measured while it
happens (:class:`Monitor`), how much each weight contributed to the loss (:func:`attribute`,
:func:`attribute_input`; loss change allocation in :mod:`backprop_rs.viz.lca`), and a
self-contained HTML report of one prediction (:mod:`backprop_rs.viz.report`)."""

from .graph import Graph, GraphNode, dot_available, graph
from .trace import ModuleTrace, trace

__all__ = ["Graph", "GraphNode", "ModuleTrace", "dot_available", "graph", "trace"]
from .monitor import QUANTITIES, Monitor, TrainingWarning  # noqa: E402

__all__ += ["Monitor", "QUANTITIES", "TrainingWarning"]
from .attribution import Attribution, InputAttribution, attribute, attribute_input  # noqa: E402

__all__ += ["Attribution", "InputAttribution", "attribute", "attribute_input"]
from .lca import LossChangeAllocator  # noqa: E402

__all__ += ["LossChangeAllocator"]
