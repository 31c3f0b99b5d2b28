//! Loss functions, composed from primitives (so each has gradients and second derivatives for
//! free). Semantics follow PyTorch: class dim 1, `reduction`, `weight`, `ignore_index`,
//! `label_smoothing`, probability targets for cross-entropy.

use crate::{DType, Error, Result, Shape, Tensor};

/// How per-element losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    None,
    Mean,
    Sum,
}

impl Reduction {
    pub fn parse(s: &str) -> Result<Reduction> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            other => Err(Error::invalid(
                "loss",
                format!(
                    "{other} is not a valid value for reduction (expected 'none', 'mean' or 'sum')"
                ),
            )),
        }
    }

    fn apply(self, loss: Tensor) -> Result<Tensor> {
        match self {
            Reduction::None => Ok(loss),
            Reduction::Mean => loss.mean_all(),
            Reduction::Sum => loss.sum_all(),
        }
    }
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().clone(),
            rhs: b.shape().clone(),
            detail: ": input and target must have the same shape".into(),
        });
    }
    Ok(())
}

/// Mean squared error.
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, input.device()) {
        return mse_loss(&ac.cast(input)?, &ac.cast(target)?, reduction);
    }
    same_shape("mse_loss", input, target)?;
    let d = input.sub(target)?;
    reduction.apply(d.mul(&d)?)
}

/// Mean absolute error.
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, input.device()) {
        return l1_loss(&ac.cast(input)?, &ac.cast(target)?, reduction);
    }
    same_shape("l1_loss", input, target)?;
    reduction.apply(input.sub(target)?.abs()?)
}

/// `-y log sigmoid(x) - (1-y) log(1 - sigmoid(x))`, computed from logits without overflow.
pub fn binary_cross_entropy_with_logits(
    input: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, input.device()) {
        let (w, pw) = (ac.cast_opt(weight)?, ac.cast_opt(pos_weight)?);
        let (x, y) = (ac.cast(input)?, ac.cast(target)?);
        return binary_cross_entropy_with_logits(&x, &y, w.as_ref(), pw.as_ref(), reduction);
    }
    same_shape("binary_cross_entropy_with_logits", input, target)?;
    let target = if target.dtype() != input.dtype() {
        target.to_dtype(input.dtype())?
    } else {
        target.clone()
    };
    let mut loss = match pos_weight {
        // softplus(x) - x*y == (1-y)x + softplus(-x)
        None => input
            .softplus(1.0, f64::INFINITY)?
            .sub(&input.mul(&target)?)?,
        Some(pw) => {
            let coef = pw.sub_scalar(1.0)?.mul(&target)?.add_scalar(1.0)?;
            target
                .rsub_scalar(1.0)?
                .mul(input)?
                .add(&coef.mul(&input.neg()?.softplus(1.0, f64::INFINITY)?)?)?
        }
    };
    if let Some(w) = weight {
        loss = loss.mul(w)?;
    }
    reduction.apply(loss)
}

/// Options shared by `nll_loss` and `cross_entropy`.
#[derive(Debug, Clone)]
pub struct ClassLossOptions {
    pub weight: Option<Tensor>,
    pub ignore_index: i64,
    pub reduction: Reduction,
    pub label_smoothing: f64,
}

impl ClassLossOptions {
    /// The options with the class weights cast for an autocast op.
    fn cast(&self, ac: &crate::autocast::Active) -> Result<ClassLossOptions> {
        Ok(ClassLossOptions {
            weight: ac.cast_opt(self.weight.as_ref())?,
            ..self.clone()
        })
    }
}

impl Default for ClassLossOptions {
    fn default() -> Self {
        ClassLossOptions {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

/// Moves the class dim (1, or 0 for a 1-d input) last and flattens: `[M, C]`; also returns the
/// per-sample shape (what `reduction='none'` returns).
fn flatten_classes(op: &'static str, input: &Tensor) -> Result<(Tensor, Shape)> {
    match input.rank() {
        0 => Err(Error::InvalidShape {
            op,
            shape: input.shape().clone(),
            msg: "expected an input of shape (C), (N, C) or (N, C, d1, ...)".into(),
        }),
        1 => Ok((input.unsqueeze(0usize)?, Shape::scalar())),
        2 => Ok((input.clone(), Shape::new(vec![input.dims()[0]]))),
        r => {
            let mut perm: Vec<usize> = vec![0];
            perm.extend(2..r);
            perm.push(1);
            let moved = input.permute(&perm)?;
            let c = input.dims()[1];
            let mut sample = vec![input.dims()[0]];
            sample.extend_from_slice(&input.dims()[2..]);
            let m: usize = sample.iter().product();
            Ok((moved.reshape([m, c])?, Shape::new(sample)))
        }
    }
}

/// Negative log-likelihood of class-index targets given log-probabilities.
pub fn nll_loss(log_probs: &Tensor, target: &Tensor, opts: &ClassLossOptions) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, log_probs.device()) {
        let opts = opts.cast(&ac)?;
        return nll_loss(&ac.cast(log_probs)?, &ac.cast(target)?, &opts);
    }
    let (lp, sample_shape) = flatten_classes("nll_loss", log_probs)?;
    let (picked, w, _) = nll_parts(&lp, &sample_shape, target, opts, "nll_loss")?;
    let loss = picked.neg()?.mul(&w)?;
    match opts.reduction {
        Reduction::None => loss.reshape(sample_shape),
        Reduction::Sum => loss.sum_all(),
        // weighted mean, as PyTorch: sum(w_i * l_i) / sum(w_i)
        Reduction::Mean => loss.sum_all()?.div(&w.sum_all()?),
    }
}

/// `log p[i, t_i]`, the per-sample weights (0 for ignored samples) and the not-ignored mask, all `[M]`.
fn nll_parts(
    lp: &Tensor,
    sample_shape: &Shape,
    target: &Tensor,
    opts: &ClassLossOptions,
    op: &'static str,
) -> Result<(Tensor, Tensor, Tensor)> {
    if target.dtype() != DType::I64 {
        return Err(Error::DType { op, dtype: target.dtype(), detail: " (class-index targets must be int64; for class probabilities pass a float target of the input's shape to cross_entropy)".into() });
    }
    if target.shape() != sample_shape {
        return Err(Error::ShapeMismatch {
            op,
            lhs: lp.shape().clone(),
            rhs: target.shape().clone(),
            detail: format!(": expected a target of shape {sample_shape}"),
        });
    }
    let c = lp.dims()[1];
    let t = target.reshape([lp.dims()[0]])?;
    let keep = t.compare_scalar(crate::Scalar::Int(opts.ignore_index), crate::op::CmpOp::Ne)?;
    let safe = Tensor::where_cond(&keep, &t, &t.zeros_scalar()?)?;
    // Labels outside [0, C) are caught by gather's index check, which is renamed for this loss.
    // (A separate min/max check would cost the GPU two readbacks, i.e. two waits, per step.)
    let index = safe.unsqueeze(1usize)?;
    let picked = crate::error::reporting_as(op, || lp.gather(1usize, &index))
        .map_err(|e| match e {
            Error::IndexOutOfRange { index, .. } => Error::IndexOutOfRange {
                op,
                index,
                dim: 1,
                size: c,
            },
            other => other,
        })?
        .reshape([lp.dims()[0]])?;
    let keepf = keep.to_dtype(lp.dtype())?;
    let w = match &opts.weight {
        Some(wt) => {
            if wt.rank() != 1 || wt.dims()[0] != c {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: lp.shape().clone(),
                    rhs: wt.shape().clone(),
                    detail: format!(": weight must be 1-d with {c} entries"),
                });
            }
            wt.to_dtype(lp.dtype())?
                .index_select(0usize, &safe)?
                .mul(&keepf)?
        }
        None => keepf.clone(),
    };
    Ok((picked, w, keepf))
}

/// Cross-entropy between logits and targets (class indices, int64, or class probabilities,
/// float of the input's shape), with optional class weights and label smoothing.
pub fn cross_entropy(input: &Tensor, target: &Tensor, opts: &ClassLossOptions) -> Result<Tensor> {
    if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, input.device()) {
        let opts = opts.cast(&ac)?;
        return cross_entropy(&ac.cast(input)?, &ac.cast(target)?, &opts);
    }
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        return Err(Error::invalid(
            "cross_entropy",
            format!(
                "label_smoothing must be between 0.0 and 1.0, got {}",
                opts.label_smoothing
            ),
        ));
    }
    let class_dim = if input.rank() == 1 { 0usize } else { 1 };
    let logp = input.log_softmax(class_dim)?;
    let (lp, sample_shape) = flatten_classes("cross_entropy", &logp)?;
    let c = lp.dims()[1];
    let eps = opts.label_smoothing;
    if let Some(wt) = &opts.weight {
        // exactly [C] for both kinds of target (a weight that merely broadcasts is refused)
        if wt.rank() != 1 || wt.dims()[0] != c {
            return Err(Error::ShapeMismatch {
                op: "cross_entropy",
                lhs: input.shape().clone(),
                rhs: wt.shape().clone(),
                detail: format!(": weight must be 1-d with {c} entries (one per class)"),
            });
        }
    }
    let weight = opts
        .weight
        .as_ref()
        .map(|w| w.to_dtype(lp.dtype()))
        .transpose()?;

    if target.dtype().is_float() {
        // probability targets
        if target.shape() != input.shape() {
            return Err(Error::ShapeMismatch {
                op: "cross_entropy",
                lhs: input.shape().clone(),
                rhs: target.shape().clone(),
                detail: ": probability targets must have the input's shape".into(),
            });
        }
        let (tp, _) = flatten_classes("cross_entropy", &target.to_dtype(lp.dtype())?)?;
        let tp = if eps > 0.0 {
            tp.mul_scalar(1.0 - eps)?.add_scalar(eps / c as f64)?
        } else {
            tp
        };
        let mut terms = lp.mul(&tp)?;
        if let Some(w) = &weight {
            terms = terms.mul(w)?;
        }
        let loss = terms.sum(&[1usize], false)?.neg()?;
        return match opts.reduction {
            Reduction::None => loss.reshape(sample_shape),
            Reduction::Sum => loss.sum_all(),
            Reduction::Mean => loss.mean_all(),
        };
    }

    let (picked, w, keep) = nll_parts(
        &lp,
        &sample_shape,
        target,
        &ClassLossOptions {
            weight: weight.clone(),
            ..opts.clone()
        },
        "cross_entropy",
    )?;
    let nll = picked.neg()?.mul(&w)?;
    let reduce = |l: Tensor| -> Result<Tensor> {
        match opts.reduction {
            Reduction::None => l.reshape(sample_shape.clone()),
            Reduction::Sum => l.sum_all(),
            Reduction::Mean => l.sum_all()?.div(&w.sum_all()?),
        }
    };
    if eps == 0.0 {
        return reduce(nll);
    }
    // PyTorch's label smoothing: (1-eps) * nll + eps/C * sum_c(-w_c log p_c), ignored samples masked
    let all = match &weight {
        Some(wt) => lp.mul(wt)?,
        None => lp.clone(),
    };
    let smooth = all.sum(&[1usize], false)?.neg()?.mul(&keep)?;
    let keep_denominator = match (&opts.reduction, &weight) {
        (Reduction::Mean, None) => Some(keep.sum_all()?),
        (Reduction::Mean, Some(_)) => Some(w.sum_all()?),
        _ => None,
    };
    let smooth_red = match opts.reduction {
        Reduction::None => smooth.reshape(sample_shape.clone())?,
        Reduction::Sum => smooth.sum_all()?,
        Reduction::Mean => smooth.sum_all()?.div(
            keep_denominator
                .as_ref()
                .ok_or_else(|| Error::invalid("cross_entropy", "internal: no denominator"))?,
        )?,
    };
    reduce(nll)?
        .mul_scalar(1.0 - eps)?
        .add(&smooth_red.mul_scalar(eps / c as f64)?)
}
