//! Scaled dot-product attention as one fused primitive (`Op::Attention`): the kernels (CPU
//! `cpu/attention.rs`, GPU `shaders/attention.wgsl`) walk the keys in tiles with an online
//! softmax, so memory grows with `L + S`, not `L * S`, and the backward recomputes the tiles
//! from the saved log-sum-exp. Cases the kernels do not take (no keys, empty head dims, heads
//! wider than a GPU workgroup) and double backward use the same maths composed from matmul and
//! softmax.

use crate::op::{AttentionSpec, Op, ReduceOp};
use crate::{DType, Device, Error, Result, Shape, Tensor};

const OP: &str = "scaled_dot_product_attention";

impl Tensor {
    /// `softmax(q k^T * scale) v` over the last two dims, as PyTorch's
    /// `F.scaled_dot_product_attention` without a mask (`causal`: row `i` attends to keys
    /// `j <= i`, top-left aligned). `q` is `[..., L, E]`, `k` `[..., S, E]`, `v` `[..., S, Ev]`
    /// with identical leading dims; `scale` defaults to `1 / sqrt(E)`. The `L x S` scores are
    /// never stored: memory is O(L + S) per head in the forward and the backward.
    ///
    /// ```
    /// # use backprop::{DType, Device, Tensor};
    /// let q = Tensor::randn([2, 5, 4], DType::F64, Device::Cpu)?;
    /// let k = Tensor::randn([2, 7, 4], DType::F64, Device::Cpu)?;
    /// let v = Tensor::randn([2, 7, 3], DType::F64, Device::Cpu)?;
    /// let o = Tensor::scaled_dot_product_attention(&q, &k, &v, None, false)?;
    /// let p = q.matmul(&k.transpose(1, 2)?)?.mul_scalar(0.5)?.softmax(2)?;
    /// let want = p.matmul(&v)?;
    /// let err = o.sub(&want)?.abs()?.max_all()?.item()?;
    /// assert!(err < 1e-12);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn scaled_dot_product_attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        scale: Option<f64>,
        causal: bool,
    ) -> Result<Tensor> {
        if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, q.device()) {
            let (q, k, v) = (ac.cast(q)?, ac.cast(k)?, ac.cast(v)?);
            return Tensor::scaled_dot_product_attention(&q, &k, &v, scale, causal);
        }
        let (qd, kd, vd) = (q.dims(), k.dims(), v.dims());
        let r = qd.len();
        let shapes = |detail: String| Error::ShapeMismatch {
            op: OP,
            lhs: q.shape().clone(),
            rhs: k.shape().clone(),
            detail: format!(" (value {}){detail}", v.shape()),
        };
        if r < 2 || kd.len() != r || vd.len() != r {
            return Err(shapes(
                ": query, key and value need the same rank, at least 2".into(),
            ));
        }
        if kd[..r - 2] != qd[..r - 2] || vd[..r - 2] != qd[..r - 2] {
            return Err(shapes(": the leading (batch) dims must be equal".into()));
        }
        if kd[r - 1] != qd[r - 1] || vd[r - 2] != kd[r - 2] {
            return Err(shapes(
                ": expected query [..., L, E], key [..., S, E], value [..., S, Ev]".into(),
            ));
        }
        for t in [k, v] {
            if t.dtype() != q.dtype() {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    lhs: q.dtype(),
                    rhs: t.dtype(),
                });
            }
            if t.device() != q.device() {
                return Err(Error::DeviceMismatch {
                    op: OP,
                    lhs: q.device(),
                    rhs: t.device(),
                });
            }
        }
        if !q.dtype().is_float() {
            return Err(Error::DType {
                op: OP,
                dtype: q.dtype(),
                detail: " (expected float query, key and value)".into(),
            });
        }
        let (l, s, e, ev) = (qd[r - 2], kd[r - 2], qd[r - 1], vd[r - 1]);
        let b: usize = qd[..r - 2].iter().product();
        let spec = AttentionSpec {
            scale: scale.unwrap_or(1.0 / (e as f64).sqrt()),
            causal,
        };
        let three = |t: &Tensor, a: usize, c: usize| t.contiguous()?.reshape([b, a, c]);
        let (q3, k3, v3) = (three(q, l, e)?, three(k, s, e)?, three(v, s, ev)?);
        let mut out_dims = qd[..r - 1].to_vec();
        out_dims.push(ev);
        if !fused_fits(q.device(), l, s, e, ev) {
            return attention_math(&q3, &k3, &v3, spec)?.reshape(out_dims);
        }
        let (o, lse) = crate::tensor::with_read([&q3, &k3, &v3], |[qs, ks, vs]| {
            qs.attention(q3.layout(), (ks, k3.layout()), (vs, v3.layout()), spec)
        })?;
        let lse = Tensor::from_storage(lse, Shape::new(vec![b, l]));
        let op = Op::Attention {
            q: q3,
            k: k3,
            v: v3,
            spec,
            lse,
        };
        let o = Tensor::from_op(o, Shape::new(vec![b, l, ev]), op)?;
        if r == 3 {
            return Ok(o);
        }
        o.reshape(out_dims)
    }
}

/// Whether the fused kernels take this problem on `device`.
fn fused_fits(device: Device, l: usize, s: usize, e: usize, ev: usize) -> bool {
    if s == 0 || e == 0 || ev == 0 || l == 0 {
        return false;
    }
    match device {
        Device::Cpu => true,
        #[cfg(feature = "gpu")]
        Device::Gpu => crate::gpu::attention::fits(l, s, e, ev),
        #[cfg(not(feature = "gpu"))]
        Device::Gpu => false,
    }
}

/// `0` where row `i` may see key `j` (`j <= i`), `-inf` elsewhere: `[l, s]` in `dtype` on `device`.
fn causal_bias(l: usize, s: usize, dtype: DType, device: Device) -> Result<Tensor> {
    let mut bias = Vec::with_capacity(l * s);
    for i in 0..l {
        bias.extend((0..s).map(|j| if j <= i { 0.0 } else { f64::NEG_INFINITY }));
    }
    Tensor::from_vec(bias, [l, s], Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)
}

/// The attention probabilities `[B, L, S]`, composed (differentiable).
fn probabilities(q: &Tensor, k: &Tensor, spec: AttentionSpec) -> Result<Tensor> {
    let scores = q.matmul(&k.transpose(1, 2)?)?.mul_scalar(spec.scale)?;
    let scores = if spec.causal {
        let (l, s) = (q.dims()[1], k.dims()[1]);
        scores.add(&causal_bias(l, s, q.dtype(), q.device())?)?
    } else {
        scores
    };
    scores.softmax(2)
}

/// The same maths from matmul and softmax (the `L x S` matrix exists): for shapes the kernels
/// do not take. `q`, `k`, `v` are `[B, L, E]`, `[B, S, E]`, `[B, S, Ev]`.
fn attention_math(q: &Tensor, k: &Tensor, v: &Tensor, spec: AttentionSpec) -> Result<Tensor> {
    probabilities(q, k, spec)?.matmul(v)
}

/// The gradients of `Op::Attention` (the rule in `autograd/rules.rs` calls this): the fused
/// backward kernel, or under `create_graph` the composed gradient (differentiable again:
/// `dS = softmax_backward(dO v^T, P)`, whose own rule gives the second derivative).
pub(crate) fn attention_grads(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    lse: &Tensor,
    out: &Tensor,
    g: &Tensor,
    spec: AttentionSpec,
) -> Result<[Tensor; 3]> {
    if crate::is_grad_enabled() {
        let p = probabilities(q, k, spec)?;
        let dv = p.transpose(1, 2)?.matmul(g)?;
        let dp = g.matmul(&v.transpose(1, 2)?)?;
        let ds = Tensor::softmax_backward(&dp, &p, 2usize, false)?.mul_scalar(spec.scale)?;
        let dq = ds.matmul(k)?;
        let dk = ds.transpose(1, 2)?.matmul(q)?;
        return Ok([dq, dk, dv]);
    }
    let (b, l) = (q.dims()[0], q.dims()[1]);
    let g = g.contiguous()?;
    let d = g.mul(out)?.reduce_keepdim(ReduceOp::Sum, &[2])?;
    let stats = Tensor::cat(&[lse.reshape([1, b, l])?, d.reshape([1, b, l])?], 0usize)?;
    let (dq, dk, dv) = crate::tensor::with_read([q, k, v, &g, &stats], |[qs, ks, vs, gs, ss]| {
        qs.attention_backward(
            q.layout(),
            (ks, k.layout()),
            (vs, v.layout()),
            (gs, g.layout()),
            (ss, stats.layout()),
            spec,
        )
    })?;
    Ok([
        Tensor::from_storage(dq, q.shape().clone()),
        Tensor::from_storage(dk, k.shape().clone()),
        Tensor::from_storage(dv, v.shape().clone()),
    ])
}
