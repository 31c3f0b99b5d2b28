//! Elementwise ops on tensors: unary math, binary arithmetic with broadcasting and type promotion,
//! comparisons, `where`, dtype casts, and the activations composed from them.

use crate::dtype::Participation;
use crate::op::{BinaryOp, CmpOp, Op, UnaryOp};
use crate::{DType, Error, Result, Scalar, Shape, Tensor};

impl Tensor {
    /// Applies a primitive unary op (integer input is promoted to float32 for float-only ops).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if op == UnaryOp::Neg && self.dtype() == DType::Bool {
            return Err(Error::DType {
                op: "neg",
                dtype: DType::Bool,
                detail: ": negation, the `-` operator, on a bool tensor is not supported; use the `~` or logical_not() operator instead".into(),
            });
        }
        if op == UnaryOp::Sign && self.dtype() == DType::Bool {
            // sign(True) = True, sign(False) = False: PyTorch keeps bool
            return self.detach().contiguous_copy().map(|t| t.detach());
        }
        let x = match self.dtype() {
            DType::Bool => self.to_dtype(if op.keeps_integers() {
                DType::I64
            } else {
                crate::default_float()
            })?,
            d if d.is_int() && !op.keeps_integers() => self.to_dtype(crate::default_float())?,
            _ => self.clone(),
        };
        let s = x.storage().unary(x.layout(), op)?;
        Tensor::from_op(s, x.shape().clone(), Op::Unary(x, op))
    }

    /// `g * f'(self)` for a unary op `op` in one kernel, untracked: `self` is the op's input or
    /// output as [`UnaryOp::fused_grad_input`] says. The autograd rule uses it when no graph of
    /// the gradient is wanted.
    pub(crate) fn unary_backward(&self, g: &Tensor, op: UnaryOp) -> Result<Tensor> {
        if g.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: op.name(),
                lhs: self.shape().clone(),
                rhs: g.shape().clone(),
                detail: ": the gradient of a unary op must have its output's shape".into(),
            });
        }
        let g = if g.dtype() == self.dtype() {
            g.clone()
        } else {
            g.to_dtype(self.dtype())?
        };
        let s = crate::tensor::with_read([self, &g], |[a, gs]| {
            a.unary_backward(self.layout(), gs, g.layout(), op)
        })?;
        Ok(Tensor::from_storage(s, self.shape().clone()))
    }

    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// Exact GELU, `x * Phi(x)` (PyTorch's `approximate='none'`).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Gelu)
    }
    /// GELU with the tanh approximation (PyTorch's `approximate='tanh'`), composed.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        let inner = self
            .add(&self.mul(self)?.mul(self)?.mul_scalar(0.044715)?)?
            .mul_scalar(0.7978845608028654)?;
        self.mul_scalar(0.5)?.mul(&inner.tanh()?.add_scalar(1.0)?)
    }
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erf)
    }
    /// `1 - erf(x)` without the cancellation: `erfc(5)` keeps its digits.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let y = Tensor::from_vec(vec![5.0f64], [1], Device::Cpu)?.erfc()?;
    /// assert!((y.to_vec::<f64>()?[0] / 1.5374597944280349e-12 - 1.0).abs() < 1e-12);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn erfc(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erfc)
    }
    /// `ln |Gamma(x)|`; its gradient is `digamma`.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let y = Tensor::from_vec(vec![5.0f64], [1], Device::Cpu)?.lgamma()?;
    /// assert!((y.to_vec::<f64>()?[0] - 24f64.ln()).abs() < 1e-14);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn lgamma(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Lgamma)
    }
    /// `psi(x) = d/dx ln Gamma(x)`; its gradient is `trigamma`.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let y = Tensor::from_vec(vec![1.0f64], [1], Device::Cpu)?.digamma()?;
    /// assert!((y.to_vec::<f64>()?[0] + 0.5772156649015329).abs() < 1e-14);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn digamma(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Digamma)
    }
    /// `psi'(x)` (`polygamma(1, x)`), not differentiable further here.
    pub fn trigamma(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Trigamma)
    }
    pub fn log1p(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log1p)
    }
    pub fn expm1(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Expm1)
    }
    pub fn log2(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log2)
    }
    pub fn log10(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log10)
    }
    pub fn tan(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tan)
    }
    pub fn asin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Asin)
    }
    pub fn acos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Acos)
    }
    pub fn atan(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Atan)
    }
    pub fn sinh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sinh)
    }
    pub fn cosh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cosh)
    }
    pub fn floor(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Floor)
    }
    pub fn ceil(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Ceil)
    }
    pub fn round(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Round)
    }
    pub fn trunc(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Trunc)
    }
    /// `x - trunc(x)`, PyTorch's `frac` (gradient 1).
    pub fn frac(&self) -> Result<Tensor> {
        self.sub(&self.trunc()?)
    }
    /// `log(1 + exp(beta x)) / beta`, linear above `threshold` (PyTorch's defaults: 1, 20).
    pub fn softplus(&self, beta: f64, threshold: f64) -> Result<Tensor> {
        let bx = if beta == 1.0 {
            self.clone()
        } else {
            self.mul_scalar(beta)?
        };
        let sp = bx.unary(UnaryOp::Softplus)?;
        let sp = if beta == 1.0 {
            sp
        } else {
            sp.div_scalar(beta)?
        };
        // above the threshold PyTorch returns x itself (and gradient 1)
        Tensor::where_cond(&bx.gt_scalar(threshold)?, self, &sp)
    }
    /// `max(0, x) + slope * min(0, x)`.
    pub fn leaky_relu(&self, negative_slope: f64) -> Result<Tensor> {
        Tensor::where_cond(
            &self.gt_scalar(0.0)?,
            self,
            &self.mul_scalar(negative_slope)?,
        )
    }
    /// Clamps into `[min, max]` (either bound optional). The gradient passes where
    /// `min <= x <= max`, as in PyTorch.
    /// `min(max(self, min), max)` with float bounds (see [`Tensor::clamp_scalars`]).
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Result<Tensor> {
        self.clamp_scalars(min.map(Scalar::Float), max.map(Scalar::Float))
    }

    /// PyTorch's `clamp` with number bounds: the result type follows promotion (an int tensor
    /// clamped to float bounds is float), `min > max` gives `max` everywhere, a NaN input or a
    /// NaN bound gives NaN, and the gradient flows where `min <= x <= max`.
    pub fn clamp_scalars(&self, min: Option<Scalar>, max: Option<Scalar>) -> Result<Tensor> {
        let bound = |s: Option<Scalar>| -> Result<Option<(Tensor, Participation)>> {
            s.map(|s| {
                let t = Tensor::constant(s, s.result_dtype(self.dtype()), self.device())?;
                Ok((t, Participation::Number))
            })
            .transpose()
        };
        self.clamp_with(bound(min)?, bound(max)?)
    }

    /// `clamp` with tensor bounds (broadcast against `self`).
    pub fn clamp_tensors(&self, min: Option<&Tensor>, max: Option<&Tensor>) -> Result<Tensor> {
        let part = |t: &Tensor| (t.clone(), participation(t));
        self.clamp_with(min.map(part), max.map(part))
    }

    fn clamp_with(
        &self,
        min: Option<(Tensor, Participation)>,
        max: Option<(Tensor, Participation)>,
    ) -> Result<Tensor> {
        if min.is_none() && max.is_none() {
            return Err(Error::invalid(
                "clamp",
                "at least one of 'min' or 'max' must not be None",
            ));
        }
        let mut ops = vec![(self.dtype(), participation(self))];
        ops.extend(min.iter().chain(&max).map(|(t, p)| (t.dtype(), *p)));
        let dt = DType::result_type(&ops).unwrap_or(self.dtype());
        let x = self.cast_if(dt)?;
        let mut y = x.clone();
        if let Some((lo, _)) = min {
            let lo = lo.cast_if(dt)?;
            // x < lo, or a NaN bound (which compares false): the bound wins
            let take = x.lt(&lo)?.logical_or(&lo.ne(&lo)?)?;
            y = Tensor::where_cond(&take, &lo, &y)?;
        }
        if let Some((hi, _)) = max {
            let hi = hi.cast_if(dt)?;
            let take = y.gt(&hi)?.logical_or(&hi.ne(&hi)?)?;
            y = Tensor::where_cond(&take, &hi, &y)?;
        }
        Ok(y)
    }
    /// `x ** 2` (PyTorch's `pow(x, 2)`: a bool tensor gives int64).
    pub fn square(&self) -> Result<Tensor> {
        self.pow_scalar_value(Scalar::Int(2))
    }
    pub fn reciprocal(&self) -> Result<Tensor> {
        self.rdiv_scalar(1.0)
    }
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.sqrt()?.reciprocal()
    }

    // ------------------------------------------------------------ binary

    /// Applies a primitive binary op after type promotion and NumPy broadcasting.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = op.name();
        if self.device() != rhs.device() {
            return Err(Error::DeviceMismatch {
                op: name,
                lhs: self.device(),
                rhs: rhs.device(),
            });
        }
        let mut dt = promote_pair(self, rhs);
        if op.is_bitwise() && dt.is_float() {
            return Err(Error::DType {
                op: name,
                dtype: dt,
                detail: format!(
                    " ({name} is only defined for integer and bool tensors, as in PyTorch)"
                ),
            });
        }
        if op == BinaryOp::Sub && (self.dtype() == DType::Bool || rhs.dtype() == DType::Bool) {
            return Err(Error::DType {
                op: name,
                dtype: DType::Bool,
                detail: if dt == DType::Bool {
                    ": subtraction, the `-` operator, with two bool tensors is not supported; use the `^` or logical_xor() operator instead".into()
                } else {
                    ": subtraction, the `-` operator, with a bool tensor is not supported; to invert a mask use the `~` or logical_not() operator instead".into()
                },
            });
        }
        if op == BinaryOp::Atan2 && !dt.is_float() {
            dt = crate::default_float(); // as torch.atan2 on integer tensors
        }
        if matches!(op, BinaryOp::Fmod | BinaryOp::Remainder) && dt == DType::Bool {
            dt = DType::I64;
        }
        if op == BinaryOp::Div && !dt.is_float() {
            dt = crate::default_float(); // true division, as in Python 3 and PyTorch
        }
        // (an int tensor ** an int tensor with negative entries is allowed, as in PyTorch: the
        // truncated result; only a negative Python int exponent is refused, in pow_scalar_value)
        let (a, b) = (self.cast_if(dt)?, rhs.cast_if(dt)?);
        let shape = if a.shape() == b.shape() {
            a.shape().clone()
        } else {
            Shape::broadcast(name, a.shape(), b.shape())?
        };
        let a = if a.shape() != &shape {
            a.broadcast_to(&shape)?
        } else {
            a
        };
        let b = if b.shape() != &shape {
            b.broadcast_to(&shape)?
        } else {
            b
        };
        if matches!(op, BinaryOp::Fmod | BinaryOp::Remainder) && !dt.is_float() && b.numel() > 0 {
            // PyTorch raises for an integer remainder by zero (the kernels would give 0)
            let _ng = crate::no_grad();
            let zero = b
                .detach()
                .eq_scalar(0.0)?
                .any(&[] as &[usize], false)?
                .item()?
                != 0.0;
            if zero {
                return Err(Error::ZeroDivision { op: name });
            }
        }
        let s = crate::tensor::with_read([&a, &b], |[sa, sb]| {
            sa.binary(a.layout(), sb, b.layout(), op)
        })?;
        Tensor::from_op(s, shape, Op::Binary(a, b, op))
    }

    pub(crate) fn cast_if(&self, dt: DType) -> Result<Tensor> {
        if self.dtype() == dt {
            Ok(self.clone())
        } else {
            self.to_dtype(dt)
        }
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add)
    }

    /// `self + alpha * other` (`op` Add) or `self - alpha * other` (Sub), PyTorch's
    /// `add(other, alpha=...)`: the product is computed in the result dtype, so a float32
    /// `other` added to a float64 tensor is scaled in float64.
    pub fn add_alpha(&self, other: &Tensor, alpha: Scalar, op: BinaryOp) -> Result<Tensor> {
        let dt = promote_pair(self, other);
        check_alpha(op.name(), dt, alpha)?;
        self.binary(&other.cast_if(dt)?.scaled_by(alpha)?, op)
    }

    /// `self OP= alpha * other` in place.
    pub fn add_alpha_(&self, other: &Tensor, alpha: Scalar, op: BinaryOp) -> Result<Tensor> {
        check_alpha(op.inplace_name(), promote_pair(self, other), alpha)?;
        let scaled = other.cast_if(promote_pair(self, other))?.scaled_by(alpha)?;
        self.binary_(&scaled, op)
    }

    /// `self * alpha` in self's dtype (a bool alpha on a bool tensor is `and`).
    fn scaled_by(&self, alpha: Scalar) -> Result<Tensor> {
        if alpha.to_f64() == 1.0 {
            return Ok(self.clone());
        }
        let a = Tensor::constant(alpha, self.dtype(), self.device())?;
        self.binary(&a, BinaryOp::Mul)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div)
    }
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Pow)
    }
    /// `atan2(self, other)` elementwise (the angle of the point `(other, self)`).
    pub fn atan2(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Atan2)
    }
    /// C's `fmod`: the remainder has the sign of `self`; integer division by zero is an error.
    pub fn fmod(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Fmod)
    }
    /// Python's `%`: the remainder has the sign of `other`.
    pub fn remainder(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Remainder)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Maximum)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Minimum)
    }

    /// `self OP scalar` (or `scalar OP self` when `reversed`), with PyTorch's scalar promotion.
    pub fn binary_scalar(&self, s: Scalar, op: BinaryOp, reversed: bool) -> Result<Tensor> {
        if op == BinaryOp::Sub && matches!(s, Scalar::Bool(_)) {
            return Err(Error::DType {
                op: op.name(),
                dtype: DType::Bool,
                detail: ": subtraction, the `-` operator, with a bool is not supported; to invert a mask use the `~` or logical_not() operator instead".into(),
            });
        }
        if op == BinaryOp::Pow && !reversed {
            return self.pow_scalar_value(s);
        }
        let dt = s.result_dtype(self.dtype());
        check_scalar_fits(op.name(), s, dt)?;
        let st = Tensor::constant(s, dt, self.device())?;
        if reversed {
            st.binary(self, op)
        } else {
            self.binary(&st, op)
        }
    }
    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.binary_scalar(Scalar::Float(v), BinaryOp::Add, false)
    }
    pub fn sub_scalar(&self, v: f64) -> Result<Tensor> {
        self.binary_scalar(Scalar::Float(v), BinaryOp::Sub, false)
    }
    /// `v - self`.
    pub fn rsub_scalar(&self, v: f64) -> Result<Tensor> {
        self.binary_scalar(Scalar::Float(v), BinaryOp::Sub, true)
    }
    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.binary_scalar(Scalar::Float(v), BinaryOp::Mul, false)
    }
    pub fn div_scalar(&self, v: f64) -> Result<Tensor> {
        self.binary_scalar(Scalar::Float(v), BinaryOp::Div, false)
    }
    /// `v / self`.
    pub fn rdiv_scalar(&self, v: f64) -> Result<Tensor> {
        self.binary_scalar(Scalar::Float(v), BinaryOp::Div, true)
    }
    pub fn pow_scalar(&self, v: f64) -> Result<Tensor> {
        self.pow_scalar_value(Scalar::Float(v))
    }

    /// `self ** s` with PyTorch's promotion (an int tensor to a float power is float; to an
    /// int power stays int; a bool tensor to an int power is int64). An integer tensor to a
    /// negative integer power is an error, as in PyTorch.
    pub fn pow_scalar_value(&self, s: Scalar) -> Result<Tensor> {
        let dt = s.result_dtype(self.dtype());
        if !dt.is_float() {
            if let Scalar::Int(e) = s {
                if e < 0 {
                    return Err(Error::invalid(
                        "pow",
                        "Integers to negative integer powers are not allowed",
                    ));
                }
            }
        }
        let x = self.cast_if(dt)?;
        // x^2 is common enough (losses, variance) to take the cheaper and exactly
        // differentiable path
        if s.to_f64() == 2.0 {
            return x.mul(&x);
        }
        let st = Tensor::constant(s, dt, self.device())?;
        x.binary(&st, BinaryOp::Pow)
    }

    // ------------------------------------------------------------ comparisons

    /// Elementwise comparison with broadcasting; returns a Bool tensor (no gradient).
    pub fn compare(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        let name = op.name();
        if self.device() != rhs.device() {
            return Err(Error::DeviceMismatch {
                op: name,
                lhs: self.device(),
                rhs: rhs.device(),
            });
        }
        let dt = promote_pair(self, rhs);
        let (a, b) = (self.detach().cast_if(dt)?, rhs.detach().cast_if(dt)?);
        let shape = Shape::broadcast(name, a.shape(), b.shape())?;
        let a = a.broadcast_to(&shape)?;
        let b = b.broadcast_to(&shape)?;
        let s = crate::tensor::with_read([&a, &b], |[sa, sb]| {
            sa.compare(a.layout(), sb, b.layout(), op)
        })?;
        Ok(Tensor::from_storage(s, shape))
    }
    pub fn compare_scalar(&self, s: Scalar, op: CmpOp) -> Result<Tensor> {
        let dt = s.result_dtype(self.dtype());
        check_scalar_fits(op.name(), s, dt)?;
        self.compare(&Tensor::constant(s, dt, self.device())?, op)
    }
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Eq)
    }
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Ne)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Lt)
    }
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Le)
    }
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Gt)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Ge)
    }
    pub fn eq_scalar(&self, v: f64) -> Result<Tensor> {
        self.compare_scalar(Scalar::Float(v), CmpOp::Eq)
    }
    pub fn gt_scalar(&self, v: f64) -> Result<Tensor> {
        self.compare_scalar(Scalar::Float(v), CmpOp::Gt)
    }
    pub fn lt_scalar(&self, v: f64) -> Result<Tensor> {
        self.compare_scalar(Scalar::Float(v), CmpOp::Lt)
    }

    /// Elementwise logical and/or/xor: both sides are first cast to their common dtype (so a
    /// float64 1e-300 next to a float32 tensor is 0, as in PyTorch), then tested against zero.
    pub fn logical_and(&self, rhs: &Tensor) -> Result<Tensor> {
        self.logical(rhs, BinaryOp::Minimum)
    }
    pub fn logical_or(&self, rhs: &Tensor) -> Result<Tensor> {
        self.logical(rhs, BinaryOp::Maximum)
    }
    pub fn logical_xor(&self, rhs: &Tensor) -> Result<Tensor> {
        self.logical(rhs, BinaryOp::BitXor)
    }
    fn logical(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let dt = promote_pair(self, rhs);
        let (a, b) = (self.detach().cast_if(dt)?, rhs.detach().cast_if(dt)?);
        a.to_bool()?.binary(&b.to_bool()?, op)
    }
    pub fn logical_not(&self) -> Result<Tensor> {
        self.to_bool()?
            .compare_scalar(Scalar::Bool(false), CmpOp::Eq)
    }
    fn to_bool(&self) -> Result<Tensor> {
        self.detach().cast_if(DType::Bool)
    }

    /// `cond ? on_true : on_false` elementwise, all three broadcast together.
    pub fn where_cond(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        if cond.dtype() != DType::Bool {
            return Err(Error::DType {
                op: "where",
                dtype: cond.dtype(),
                detail: " (the condition must be a bool tensor)".into(),
            });
        }
        for t in [on_true, on_false] {
            if t.device() != cond.device() {
                return Err(Error::DeviceMismatch {
                    op: "where",
                    lhs: cond.device(),
                    rhs: t.device(),
                });
            }
        }
        let dt = promote_pair(on_true, on_false);
        let (a, b) = (on_true.cast_if(dt)?, on_false.cast_if(dt)?);
        let shape = Shape::broadcast(
            "where",
            &Shape::broadcast("where", cond.shape(), a.shape())?,
            b.shape(),
        )?;
        let c = cond.detach().broadcast_to(&shape)?;
        let a = a.broadcast_to(&shape)?;
        let b = b.broadcast_to(&shape)?;
        let s = crate::tensor::with_read([&c, &a, &b], |[sc, sa, sb]| {
            sc.where_cond(c.layout(), sa, a.layout(), sb, b.layout())
        })?;
        Tensor::from_op(s, shape, Op::Where(c, a, b))
    }

    /// Converts to another dtype. Float-to-float casts are differentiable; casts to int/bool are not.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let s = self.storage().cast(self.layout(), dtype)?;
        if dtype.is_float() && self.dtype().is_float() {
            Tensor::from_op(s, self.shape().clone(), Op::Cast(self.clone()))
        } else {
            Ok(Tensor::from_storage(s, self.shape().clone()))
        }
    }
}

/// The participation of a tensor in type promotion.
pub(crate) fn participation(t: &Tensor) -> Participation {
    if t.rank() == 0 {
        Participation::ZeroDim
    } else {
        Participation::Dim
    }
}

/// PyTorch's result type of an op on two tensors (0-d tensors do not widen within a category).
/// PyTorch's rule for `alpha`: no float alpha for an integral result, no bool alpha for a
/// non-bool one.
fn check_alpha(op: &'static str, dt: DType, alpha: Scalar) -> Result<()> {
    match alpha {
        Scalar::Float(_) if !dt.is_float() => Err(Error::Type {
            op,
            msg: "for integral input tensors, argument alpha must not be a floating point number"
                .into(),
        }),
        Scalar::Bool(_) if dt != DType::Bool => Err(Error::Type {
            op,
            msg: "boolean alpha only supported for Boolean results".into(),
        }),
        _ => Ok(()),
    }
}

/// PyTorch's `checked_convert` for a Python number meeting a narrow tensor: `uint8 + 300` or
/// `float16 + 1e6` raise instead of wrapping (or overflowing) the number first, which would give
/// a silently wrong result (int64 and the wide floats hold every Python number they meet).
fn check_scalar_fits(op: &'static str, s: Scalar, dt: DType) -> Result<()> {
    let v = s.to_f64();
    let (lo, hi) = match dt {
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::F16 | DType::BF16 if v.is_finite() => (-dt.finite_max(), dt.finite_max()),
        _ => return Ok(()),
    };
    if v < lo || v > hi {
        // a DTypeError: both a TypeError and a RuntimeError (PyTorch raises RuntimeError)
        return Err(Error::DType {
            op,
            dtype: dt,
            detail: format!(": value {v} cannot be converted to type {dt} without overflow"),
        });
    }
    Ok(())
}

pub(crate) fn promote_pair(a: &Tensor, b: &Tensor) -> DType {
    DType::result_type(&[(a.dtype(), participation(a)), (b.dtype(), participation(b))])
        .unwrap_or(a.dtype())
}
