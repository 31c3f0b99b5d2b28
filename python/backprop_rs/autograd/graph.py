"""The graph as objects (``torch.autograd.graph``): ``t.grad_fn`` is a :class:`Node`.

A node has ``name()``, ``next_functions`` (pairs ``(node or None, input index)``, with
``AccumulateGrad`` nodes for leaves that require grad, whose ``variable`` is the leaf),
``metadata`` (a dict kept with the node), ``register_hook(fn(grad_inputs, grad_outputs))`` and
``register_prehook(fn(grad_outputs))``. Node names are those of the engine's primitives
(``MulBackward0``, ``MatmulBackward0``, ...): a composite such as ``mse_loss`` is recorded as the
primitives it is made of, so its graph shows those rather than ``MseLossBackward0``. After a
backward without ``retain_graph=True`` a node keeps its name but ``next_functions`` raises.
"""

from .._core import Node

__all__ = ["Node"]
