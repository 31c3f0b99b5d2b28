"""``scaled_dot_product_attention`` and the multi-head attention forward that
``nn.MultiheadAttention`` runs.

Without a mask and without dropout (the causal language-model case and plain attention),
``scaled_dot_product_attention`` runs the core's fused primitive: a tiled online-softmax
(flash-attention) kernel whose forward and backward never store the ``L x S`` scores, so
memory grows linearly in the sequence length. With an explicit ``attn_mask`` or dropout it is
composed from matmul, where and softmax (PyTorch's math definition; memory O(L*S) per head)."""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

from .. import _core
from .._core import Tensor
from ..amp import _listed

_NEG_INF = float("-inf")
_CAUSAL_CACHE: Dict[Tuple[int, int, str], Tensor] = {}


def _causal_keep(L: int, S: int, device) -> Tensor:
    """``keep[i, j] = j <= i`` (top-left aligned, as PyTorch's ``is_causal``), cached per size/device."""
    key = (L, S, str(device))
    m = _CAUSAL_CACHE.get(key)
    if m is None:
        m = _core.arange(L, device=device)[:, None] >= _core.arange(S, device=device)[None, :]
        if len(_CAUSAL_CACHE) > 64:
            _CAUSAL_CACHE.clear()
        _CAUSAL_CACHE[key] = m
    return m


def _repeat_heads(t: Tensor, rep: int) -> Tensor:
    """``t.repeat_interleave(rep, dim=-3)`` as a view + one copy."""
    if rep == 1:
        return t
    shape = list(t.shape)
    h = shape[-3]
    u = t.unsqueeze(-3)  # (..., Hk, 1, S, E)
    u = u.expand(*shape[:-3], h, rep, *shape[-2:])
    return u.reshape(*shape[:-3], h * rep, *shape[-2:])


@_listed("lower")
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(q @ k^T * scale + bias) @ v`` over the last two dims, as ``torch.nn.functional``'s.

    ``query`` is ``(..., L, E)``, ``key`` ``(..., S, E)``, ``value`` ``(..., S, Ev)``; leading dims
    broadcast. ``attn_mask`` broadcasts to ``(..., L, S)``: a bool mask keeps the positions where it
    is True, a float mask is added to the scores. ``is_causal`` keeps ``j <= i`` (and refuses an
    ``attn_mask`` besides). ``scale`` defaults to ``1/sqrt(E)``. ``enable_gqa`` lets ``key``/``value``
    have fewer heads (dim -3) than ``query``, each shared by ``Hq / Hkv`` query heads. A row whose
    every key is masked out gives zeros (PyTorch's math kernel since 2.5), with finite gradients.
    ``dropout_p`` drops attention weights (always, as in PyTorch: pass 0.0 in eval).
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: query, key and value need at least 2 dims; got shapes "
                         f"{list(query.shape)}, {list(key.shape)}, {list(value.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query's last dim {query.shape[-1]} differs from key's "
                         f"{key.shape[-1]} (shapes {list(query.shape)} and {list(key.shape)})")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key and value need the same sequence length; got shapes "
                         f"{list(key.shape)} and {list(value.shape)}")
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: _scaled_dot_product_attention: Explicit attn_mask should "
                           "not be set when is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hq % hk or hq % hv:
            raise ValueError(f"scaled_dot_product_attention: enable_gqa needs the number of query heads ({hq}) to be "
                             f"a multiple of the key/value heads ({hk}, {hv})")
        key = _repeat_heads(key, hq // hk)
        value = _repeat_heads(value, hq // hv)
    L, S = query.shape[-2], key.shape[-2]
    sf = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if (attn_mask is None and dropout_p == 0.0 and query.ndim == key.ndim == value.ndim
            and query.shape[:-2] == key.shape[:-2] == value.shape[:-2]):
        return _core._fused_attention(query, key, value, sf, is_causal)
    # scale q (L x E) rather than the scores (L x S): the same maths, fewer multiplications
    scores = (query * sf) @ key.transpose(-2, -1)
    if is_causal:
        scores = _core.where(_causal_keep(L, S, query.device), scores, _NEG_INF)
        attn = scores.softmax(-1)
    elif attn_mask is None:
        attn = scores.softmax(-1)
    else:
        if attn_mask.dtype == _core.bool_:
            scores = _core.where(attn_mask, scores, _NEG_INF)
            alive = attn_mask.any(-1, keepdim=True)
        else:
            scores = scores + attn_mask.to(scores.dtype)
            alive = scores.amax(-1, keepdim=True) > _NEG_INF
        # on the CPU a check is free and usually spares two passes; on the GPU it would be a
        # readback per call, so the safe path always runs there
        if not scores.is_gpu and bool(alive.all().item()):
            attn = scores.softmax(-1)
        else:
            # fully masked rows: softmax over zeros (finite everywhere), then zeroed
            attn = _core.where(alive, _core.where(alive, scores, 0.0).softmax(-1), 0.0)
    if dropout_p > 0.0:
        attn = _core.dropout(attn, dropout_p, True)
    return attn @ value


def _as_additive(mask: Optional[Tensor], dtype, name: str) -> Optional[Tensor]:
    """MultiheadAttention's masks: bool True means 'do not attend' (-inf); floats are added."""
    if mask is None:
        return None
    if mask.dtype == _core.bool_:
        return _core.where(mask, _NEG_INF, 0.0).to(dtype)
    if not mask.is_floating_point():
        raise TypeError(f"only bool and floating types of {name} are supported; got {mask.dtype}")
    return mask.to(dtype)


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, num_heads: int,
                                 in_proj_weight: Optional[Tensor], in_proj_bias: Optional[Tensor],
                                 bias_k: Optional[Tensor], bias_v: Optional[Tensor], add_zero_attn: bool,
                                 dropout_p: float, out_proj_weight: Tensor, out_proj_bias: Optional[Tensor],
                                 training: bool = True, key_padding_mask: Optional[Tensor] = None,
                                 need_weights: bool = True, attn_mask: Optional[Tensor] = None,
                                 use_separate_proj_weight: bool = False, q_proj_weight: Optional[Tensor] = None,
                                 k_proj_weight: Optional[Tensor] = None, v_proj_weight: Optional[Tensor] = None,
                                 static_k: Optional[Tensor] = None, static_v: Optional[Tensor] = None,
                                 average_attn_weights: bool = True,
                                 is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """``torch.nn.functional.multi_head_attention_forward`` for sequence-first inputs
    ``(L, N, E)`` / ``(S, N, E)`` (or unbatched ``(L, E)``). Returns ``(output, weights)``."""
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k/static_v are not supported")
    batched = query.ndim == 3
    if not batched:
        if query.ndim != 2 or key.ndim != 2 or value.ndim != 2:
            raise ValueError(f"multi_head_attention_forward: query, key and value must be all 2-D (unbatched) or "
                             f"all 3-D; got shapes {list(query.shape)}, {list(key.shape)}, {list(value.shape)}")
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif key.ndim != 3 or value.ndim != 3:
        raise ValueError(f"multi_head_attention_forward: query is 3-D, so key and value must be too; got shapes "
                         f"{list(key.shape)}, {list(value.shape)}")
    L, N, E = query.shape
    S = key.shape[0]
    if E % num_heads:
        raise ValueError(f"embed_dim {E} not divisible by num_heads {num_heads}")
    hd = E // num_heads
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    # projections
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise ValueError("multi_head_attention_forward: in_proj_weight is None but use_separate_proj_weight=False")
        if query is key and key is value:
            q, k, v = _core.linear(query, in_proj_weight, in_proj_bias).chunk(3, -1)
        else:
            w_q, w_k, w_v = in_proj_weight.chunk(3, 0)
            b_q, b_k, b_v = in_proj_bias.chunk(3, 0) if in_proj_bias is not None else (None, None, None)
            if key is value:
                q = _core.linear(query, w_q, b_q)
                k, v = _core.linear(key, _core.cat([w_k, w_v], 0),
                                    None if b_k is None else _core.cat([b_k, b_v], 0)).chunk(2, -1)
            else:
                q, k, v = _core.linear(query, w_q, b_q), _core.linear(key, w_k, b_k), _core.linear(value, w_v, b_v)
    else:
        b_q, b_k, b_v = in_proj_bias.chunk(3, 0) if in_proj_bias is not None else (None, None, None)
        q, k, v = (_core.linear(query, q_proj_weight, b_q), _core.linear(key, k_proj_weight, b_k),
                   _core.linear(value, v_proj_weight, b_v))
    dtype = q.dtype
    # masks: one additive float tensor broadcastable to (N, H, L, S')
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if list(attn_mask.shape) != [L, S]:
                raise RuntimeError(f"The shape of the 2D attn_mask is {list(attn_mask.shape)}, but should be {[L, S]}.")
        elif attn_mask.ndim == 3:
            if list(attn_mask.shape) != [N * num_heads, L, S]:
                raise RuntimeError(f"The shape of the 3D attn_mask is {list(attn_mask.shape)}, but should be "
                                   f"{[N * num_heads, L, S]}.")
            attn_mask = attn_mask.reshape(N, num_heads, L, S)
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
    mask = _as_additive(attn_mask, dtype, "attn_mask")
    kpm = _as_additive(key_padding_mask, dtype, "key_padding_mask")
    if kpm is not None and list(kpm.shape) != [N, S]:
        raise RuntimeError(f"expecting key_padding_mask shape of {[N, S]}, but got {list(kpm.shape)}")
    if bias_k is not None and bias_v is not None:
        k = _core.cat([k, bias_k.expand(1, N, E)], 0)
        v = _core.cat([v, bias_v.expand(1, N, E)], 0)
        if mask is not None:
            mask = _core.cat([mask, _core.zeros(*mask.shape[:-1], 1, dtype=dtype, device=mask.device)], -1)
        if kpm is not None:
            kpm = _core.cat([kpm, _core.zeros(N, 1, dtype=dtype, device=kpm.device)], -1)
    # (T, N, E) -> (N, H, T, hd)
    def heads(t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], N, num_heads, hd).permute(1, 2, 0, 3)

    q, k, v = heads(q), heads(k), heads(v)
    if add_zero_attn:
        k = _core.cat([k, _core.zeros(N, num_heads, 1, hd, dtype=dtype, device=k.device)], 2)
        v = _core.cat([v, _core.zeros(N, num_heads, 1, hd, dtype=dtype, device=v.device)], 2)
        if mask is not None:
            mask = _core.cat([mask, _core.zeros(*mask.shape[:-1], 1, dtype=dtype, device=mask.device)], -1)
        if kpm is not None:
            kpm = _core.cat([kpm, _core.zeros(N, 1, dtype=dtype, device=kpm.device)], -1)
    if kpm is not None:
        kpm = kpm.reshape(N, 1, 1, kpm.shape[-1])
        mask = kpm if mask is None else mask + kpm
    p = dropout_p if training else 0.0
    if need_weights:
        scores = (q * (1.0 / math.sqrt(hd))) @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        w = scores.softmax(-1)
        if p > 0.0:
            w = _core.dropout(w, p, True)
        out = w @ v
    elif is_causal and key_padding_mask is None and bias_k is None and not add_zero_attn:
        # PyTorch's reading of the hint: attn_mask is the causal mask, so SDPA runs with
        # is_causal and no mask (here: the fused kernel, no L x S mask or scores in memory)
        w = None
        out = scaled_dot_product_attention(q, k, v, None, p, is_causal=True)
    else:
        w = None
        out = scaled_dot_product_attention(q, k, v, mask, p)
    out = out.permute(2, 0, 1, 3).reshape(L, N, E)
    out = _core.linear(out, out_proj_weight, out_proj_bias)
    if w is not None and average_attn_weights:
        w = w.mean(1)
    if not batched:
        out = out.squeeze(1)
        if w is not None:
            w = w.squeeze(0)
    return out, w
