"""Recurrent layers with ``torch.nn``'s names, arguments, parameter names/shapes and gate order:
``RNN`` (tanh/relu), ``LSTM`` (with ``proj_size``), ``GRU`` and the cells ``RNNCell``,
``LSTMCell``, ``GRUCell``. Composites of existing ops: per layer and direction, the input
projection of all time steps is one matmul; each step is one ``h @ W_hh^T`` plus the gate
arithmetic. ``PackedSequence`` inputs run each step on the sequences still alive (the
batch is sorted by length, so they are the leading rows)."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

from .. import _core
from .._core import Tensor
from . import init
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ------------------------------------------------------------------------------------------ one step

def _rnn_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], relu: bool) -> Tensor:
    """``act(xw + h W_hh^T + b_hh)``; ``xw`` already holds ``x W_ih^T + b_ih``."""
    pre = xw + _core.linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


def _lstm_step(xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Optional[Tensor],
               w_hr: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """Gates in PyTorch's order i, f, g, o: ``c' = f c + i g``, ``h' = o tanh(c')`` (then ``W_hr``)."""
    gates = xw + _core.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h = o.sigmoid() * c.tanh()
    if w_hr is not None:
        h = _core.linear(h, w_hr, None)
    return h, c


def _gru_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor]) -> Tensor:
    """Gates r, z, n: ``n = tanh(x_n + r (h W_hn^T + b_hn))``, ``h' = (1 - z) n + z h``."""
    hh = _core.linear(h, w_hh, b_hh)
    x_r, x_z, x_n = xw.chunk(3, -1)
    h_r, h_z, h_n = hh.chunk(3, -1)
    r = (x_r + h_r).sigmoid()
    z = (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return n + z * (h - n)


# ------------------------------------------------------------------------------------------ cells

class RNNCellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw = dict(device=device, dtype=dtype)
        self.weight_ih = Parameter(_core.empty(num_chunks * hidden_size, input_size, **kw))
        self.weight_hh = Parameter(_core.empty(num_chunks * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = Parameter(_core.empty(num_chunks * hidden_size, **kw))
            self.bias_hh = Parameter(_core.empty(num_chunks * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s

    def _prep(self, input: Tensor, hx: Optional[Tensor], name: str) -> Tuple[Tensor, Optional[Tensor], bool]:
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
            if hx is not None:
                hx = hx.unsqueeze(0)
        return input, hx, batched

    def _zeros(self, input: Tensor) -> Tensor:
        return _core.zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)


class RNNCell(RNNCellBase):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (``nonlinearity='relu'``: ReLU)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        input, hx, batched = self._prep(input, hx, "RNNCell")
        h = self._zeros(input) if hx is None else hx
        out = _rnn_step(_core.linear(input, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                        self.nonlinearity == "relu")
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; ``hx = (h, c)``; returns ``(h', c')``. Gates i, f, g, o as PyTorch."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, Tensor]:
        batched = input.ndim == 2
        if hx is not None and not batched:
            hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
        input, _, _ = self._prep(input, None, "LSTMCell")
        if hx is None:
            z = self._zeros(input)
            hx = (z, z)
        h, c = _lstm_step(_core.linear(input, self.weight_ih, self.bias_ih), hx[0], hx[1], self.weight_hh,
                          self.bias_hh, None)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n as PyTorch)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        input, hx, batched = self._prep(input, hx, "GRUCell")
        h = self._zeros(input) if hx is None else hx
        out = _gru_step(_core.linear(input, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return out if batched else out.squeeze(0)


# ------------------------------------------------------------------------------------------ layers

class RNNBase(Module):
    """The multi-layer, optionally bidirectional recurrence shared by ``RNN``, ``LSTM`` and ``GRU``."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer; got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer; got {num_layers!r}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size and proj_size > 0:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        kw = dict(device=device, dtype=dtype)
        self._flat_weights_names: List[str] = []
        self._all_weights: List[List[str]] = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input = input_size if layer == 0 else real_hidden * num_directions
                suffix = "_reverse" if direction == 1 else ""
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size > 0:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                names = []
                for base, shape in shapes:
                    name = f"{base}_l{layer}{suffix}"
                    setattr(self, name, Parameter(_core.empty(*shape, **kw)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op (there is no cuDNN weight buffer to compact)."""

    @property
    def all_weights(self) -> List[List[Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> List[Parameter]:
        return [getattr(self, n) for n in self._flat_weights_names]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -------------------------------------------------------------------------------- forward

    def _weights(self, layer: int, direction: int):
        suffix = "_reverse" if direction == 1 else ""
        get = lambda base: getattr(self, f"{base}_l{layer}{suffix}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _run_direction(self, xw: Tensor, steps: List[Tuple[int, int]], h: Tensor, c: Optional[Tensor],
                       w_hh: Tensor, b_hh: Optional[Tensor], w_hr: Optional[Tensor], reverse: bool):
        """Runs one direction over the projected inputs ``xw`` (rows of step ``t`` are
        ``steps[t] = (offset, batch)``). Returns the per-step outputs (in time order) and the final
        ``h`` (and ``c``)."""
        n = h.shape[0]
        if self.mode == "LSTM" and w_hr is None and steps and all(b == n for _, b in steps):
            # every step has the whole batch: the core's layer (one node, backward through time
            # by hand with dW_hh as one GEMM; see rust/backprop/src/nn/rnn.rs)
            T = len(steps)
            if b_hh is not None:
                xw = xw + b_hh
            hs, h, c = _core._lstm_layer(xw.reshape(T, n, xw.shape[-1]), h, c, w_hh, reverse)
            return [hs.reshape(T * n, hs.shape[-1])], h, c
        outs: List[Optional[Tensor]] = [None] * len(steps)
        order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
        # the steps' slices of the one projection; backward adds each step's gradient into its
        # rows of the projection's gradient in place (the engine's slice accumulation), so the
        # T slices cost O(T) memory traffic, not O(T^2)
        xs = xw.split([b for _, b in steps], 0) if len(steps) > 1 else [xw]
        for t in order:
            _, b = steps[t]
            x_t = xs[t]
            full = b == n
            h_a = h if full else h.narrow(0, 0, b)
            if self.mode == "LSTM":
                c_a = c if full else c.narrow(0, 0, b)
                h_new, c_new = _lstm_step(x_t, h_a, c_a, w_hh, b_hh, w_hr)
                c = c_new if full else _core.cat([c_new, c.narrow(0, b, n - b)], 0)
            elif self.mode == "GRU":
                h_new = _gru_step(x_t, h_a, w_hh, b_hh)
            else:
                h_new = _rnn_step(x_t, h_a, w_hh, b_hh, self.mode == "RNN_RELU")
            outs[t] = h_new
            h = h_new if full else _core.cat([h_new, h.narrow(0, b, n - b)], 0)
        return outs, h, c

    def forward(self, input, hx=None):
        is_lstm = self.mode == "LSTM"
        name = {"LSTM": "LSTM", "GRU": "GRU"}.get(self.mode, "RNN")
        packed = isinstance(input, PackedSequence)
        D = 2 if self.bidirectional else 1
        h_out = self.proj_size if self.proj_size > 0 else self.hidden_size
        sorted_idx = unsorted_idx = None
        if packed:
            data, batch_sizes = input.data, input.batch_sizes
            sorted_idx, unsorted_idx = input.sorted_indices, input.unsorted_indices
            sizes = [int(b) for b in batch_sizes.tolist()]
            n = sizes[0] if sizes else 0
            batched = True
        else:
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
            batched = input.ndim == 3
            x = input if batched else input.unsqueeze(1)
            if self.batch_first and batched:
                x = x.transpose(0, 1)
            T, n = x.shape[0], x.shape[1]
            sizes = [n] * T
            data = x.reshape(T * n, x.shape[2])
        if data.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {data.shape[-1]}")
        steps, off = [], 0
        for b in sizes:
            steps.append((off, b))
            off += b
        # initial states, (D * num_layers, N, H)
        if hx is None:
            h0 = _core.zeros(D * self.num_layers, n, h_out, dtype=data.dtype, device=data.device)
            c0 = _core.zeros(D * self.num_layers, n, self.hidden_size, dtype=data.dtype, device=data.device) \
                if is_lstm else None
        else:
            if is_lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
                h0, c0 = hx
            else:
                h0, c0 = hx, None
            if not batched:
                if h0.ndim != 2 or (c0 is not None and c0.ndim != 2):
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got "
                                       f"{h0.ndim}-D tensor")
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
            elif h0.ndim != 3 or (c0 is not None and c0.ndim != 3):
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {h0.ndim}-D tensor")
            if sorted_idx is not None:
                h0 = h0.index_select(1, sorted_idx)
                c0 = c0.index_select(1, sorted_idx) if c0 is not None else None
            exp_h = [D * self.num_layers, n, h_out]
            if list(h0.shape) != exp_h:
                raise RuntimeError(f"Expected hidden size {tuple(exp_h)}, got {list(h0.shape)}")
            if c0 is not None and list(c0.shape) != [D * self.num_layers, n, self.hidden_size]:
                raise RuntimeError(f"Expected hidden[1] size {(D * self.num_layers, n, self.hidden_size)}, got "
                                   f"{list(c0.shape)}")
        h_finals, c_finals = [], []
        layer_in = data
        for layer in range(self.num_layers):
            dir_outs = []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
                k = layer * D + d
                if self.mode != "GRU" and b_ih is not None:
                    # b_hh folds into the one input projection (GRU keeps b_hn inside r * (.))
                    xw = _core.linear(layer_in, w_ih, b_ih + b_hh)
                    b_step = None
                else:
                    xw = _core.linear(layer_in, w_ih, b_ih)
                    b_step = b_hh
                outs, h_k, c_k = self._run_direction(xw, steps, h0[k], c0[k] if c0 is not None else None, w_hh,
                                                     b_step, w_hr, reverse=d == 1)
                dir_outs.append(outs)
                h_finals.append(h_k)
                if is_lstm:
                    c_finals.append(c_k)
            if D == 1:
                per_step = dir_outs[0]
            else:
                per_step = [_core.cat([f, b], -1) for f, b in zip(dir_outs[0], dir_outs[1])]
            layer_out = per_step[0] if len(per_step) == 1 else _core.cat(per_step, 0)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_out = _core.dropout(layer_out, self.dropout, True)
            layer_in = layer_out
        h_n = _core.stack(h_finals, 0)
        c_n = _core.stack(c_finals, 0) if is_lstm else None
        if unsorted_idx is not None:
            h_n = h_n.index_select(1, unsorted_idx)
            c_n = c_n.index_select(1, unsorted_idx) if c_n is not None else None
        if packed:
            output = PackedSequence(layer_in, input.batch_sizes, sorted_idx, unsorted_idx)
        else:
            output = layer_in.reshape(len(sizes), n, D * h_out)
            if self.batch_first and batched:
                output = output.transpose(0, 1)
            if not batched:
                output = output.squeeze(1)
                h_n = h_n.squeeze(1)
                c_n = c_n.squeeze(1) if c_n is not None else None
        return output, ((h_n, c_n) if is_lstm else h_n)


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU), stacked
    ``num_layers`` deep, optionally bidirectional. Returns ``(output, h_n)``.
    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``."""

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(mode, *args, **kwargs)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o), optionally with a projection ``W_hr`` of the
    hidden state (``proj_size``). Returns ``(output, (h_n, c_n))``.
    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit (gates r, z, n). Returns ``(output, h_n)``.
    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False)``."""

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
