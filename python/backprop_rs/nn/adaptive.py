"""``nn.AdaptiveLogSoftmaxWithLoss``: the adaptive softmax of Grave et al. (2017, "Efficient
softmax approximation for GPUs") for large vocabularies, as PyTorch's module.

The classes are split by ``cutoffs`` into a frequent shortlist and clusters of rarer ones. The
head scores the shortlist plus one entry per cluster; each cluster has its own two-layer
projection (narrowed by ``div_value`` per cluster) scoring the classes inside it, so
``log p(c) = log p_head(cluster(c)) + log p_cluster(c)``. The forward only evaluates each cluster
on the rows whose target falls in it. Everything is a composite (linear layers, ``log_softmax``,
``gather``, ``index_copy``), so the gradients are the engine's own.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, List, Sequence

from .. import _core
from .._core import Tensor
from .container import ModuleList, Sequential
from .linear import Linear
from .module import Module

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    """``AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=4.0,
    head_bias=False)``. ``forward(input, target)`` returns ``(output, loss)``: the target
    log-probability of each row and their negative mean. ``log_prob(input)`` gives every class's
    log-probability, ``predict(input)`` the most likely class."""

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int], div_value: float = 4.0,
                 head_bias: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > (n_classes - 1)
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an increasing "
                             "order, where each value is between 1 and n_classes-1")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs: List[int] = [int(c) for c in cutoffs] + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        kw = {"device": device, "dtype": dtype}
        self.head = Linear(in_features, self.head_size, bias=head_bias, **kw)
        tails = []
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            tails.append(Sequential(Linear(in_features, hsz, bias=False, **kw), Linear(hsz, osz, bias=False, **kw)))
        self.tail = ModuleList(tails)

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for i2h, h2o in self.tail:
            i2h.reset_parameters()
            h2o.reset_parameters()

    def forward(self, input_: Tensor, target_: Tensor) -> Any:
        from .functional import log_softmax

        targ_dim = target_.dim()
        if targ_dim == 1:
            if input_.size(0) != target_.size(0):
                raise RuntimeError("Input and target should have the same size in the batch dimension.")
            if input_.dim() != 2:
                raise RuntimeError("1D target tensor expects 2D input tensors, but found inputs with size "
                                   f"{tuple(input_.shape)}")
        elif targ_dim == 0:
            if input_.dim() != 1:
                raise RuntimeError("0D target tensor expects 1D input tensors, but found inputs with size "
                                   f"{tuple(input_.shape)}")
        else:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        is_batched = targ_dim > 0
        inp = input_ if is_batched else input_.unsqueeze(0)
        target = target_ if is_batched else target_.unsqueeze(0)

        batch_size = target.size(0)
        output = inp.new_zeros(batch_size)
        gather_inds = target.new_empty(batch_size)
        used_rows = 0
        for i in range(len(self.cutoffs)):
            low = 0 if i == 0 else self.cutoffs[i - 1]
            high = self.cutoffs[i]
            mask = (target >= low).logical_and(target < high)
            rows = mask.nonzero().reshape(-1)
            if rows.numel() == 0:
                continue
            if i == 0:
                gather_inds = gather_inds.index_copy(0, rows, target[mask])
            else:
                relative = target[mask] - low
                cluster_logprob = log_softmax(self.tail[i - 1](inp.index_select(0, rows)), dim=1)
                gather_inds = gather_inds.index_fill(0, rows, self.shortlist_size + i - 1)
                local = cluster_logprob.gather(1, relative.unsqueeze(1)).squeeze(1)
                output = output.index_copy(0, rows, local)
            used_rows += rows.numel()
        if used_rows != batch_size:
            raise RuntimeError(f"Target values should be in [0, {self.n_classes - 1}], but values in range "
                               f"[{target.min().item()}, {target.max().item()}] were found. ")
        head_logprob = log_softmax(self.head(inp), dim=1)
        output = output + head_logprob.gather(1, gather_inds.unsqueeze(1)).squeeze(1)
        loss = (-output).mean()
        if not is_batched:
            output = output.squeeze(0)
        return _ASMoutput(output, loss)

    def _get_full_log_prob(self, inp: Tensor, head_output: Tensor) -> Tensor:
        from .functional import log_softmax

        head_logprob = log_softmax(head_output, dim=1)
        parts = [head_logprob[:, :self.shortlist_size]]
        for i in range(self.n_clusters):
            cluster_logprob = log_softmax(self.tail[i](inp), dim=1)
            parts.append(cluster_logprob + head_logprob[:, self.shortlist_size + i].unsqueeze(1))
        return _core.cat(parts, 1)

    def log_prob(self, input: Tensor) -> Tensor:
        """The log-probability of every class, ``[N, n_classes]`` (or ``[n_classes]`` unbatched)."""
        is_batched = input.dim() > 1
        inp = input if is_batched else input.unsqueeze(0)
        out = self._get_full_log_prob(inp, self.head(inp))
        return out if is_batched else out.squeeze(0)

    def predict(self, input: Tensor) -> Tensor:
        """The most likely class of each row: ``log_prob(input).argmax(1)``."""
        is_batched = input.dim() > 1
        inp = input if is_batched else input.unsqueeze(0)
        out = self._get_full_log_prob(inp, self.head(inp)).argmax(1)
        return out if is_batched else out.squeeze(0)

    def extra_repr(self) -> str:
        return ""
