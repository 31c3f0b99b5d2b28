//! Tensor constructors: constants, ranges, identity, and random tensors from the global generator.

use crate::cpu::buffer::alloc;
use crate::random::with_rng;
use crate::storage::Storage;
use crate::{DType, Device, Element, Error, Result, Scalar, Shape, Tensor};

/// Device constants `Tensor::constant` keeps (a few hundred bytes of device memory each).
const MAX_CONSTANTS: usize = 64;

type ConstantKey = (DType, u8, u64);

static CONSTANTS: std::sync::Mutex<Option<std::collections::HashMap<ConstantKey, Tensor>>> =
    std::sync::Mutex::new(None);

/// The value's exact bits with its kind (so `2` and `2.0` and `-0.0` stay apart).
fn constant_key(s: Scalar, dtype: DType) -> ConstantKey {
    match s {
        Scalar::Bool(b) => (dtype, 0, b as u64),
        Scalar::Int(i) => (dtype, 1, i as u64),
        Scalar::Float(f) => (dtype, 2, f.to_bits()),
    }
}

/// Drops the cached device constants (`gpu::empty_cache` gives their buffers back).
#[cfg(feature = "gpu")]
pub(crate) fn clear_constants() {
    if let Some(c) = CONSTANTS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        c.clear();
    }
}

impl Tensor {
    /// A tensor of `shape` filled with `value`.
    pub fn full(
        shape: impl Into<Shape>,
        value: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        Tensor::full_value(shape, Scalar::Float(value), dtype, device)
    }
    /// A tensor of `shape` filled with `value` converted exactly to `dtype` (an int64 value
    /// keeps all its 64 bits).
    pub fn full_value(
        shape: impl Into<Shape>,
        value: Scalar,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let s = Storage::full(&shape, value, dtype, device)?;
        Ok(Tensor::from_storage(s, shape))
    }
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype, device)
    }
    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype, device)
    }
    /// A 0-d tensor holding `s` converted to `dtype`.
    pub fn full_scalar(s: Scalar, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full_value(Shape::scalar(), s, dtype, device)
    }
    /// A 0-d constant operand of the engine's own ops (the number in `x * 2`, the zero of a
    /// masked `where`). On the GPU it comes from a small cache keyed by value and dtype: making
    /// it is a fill dispatch and a buffer, and a training step has a dozen of them (8 of the MLP
    /// step's 52 dispatches were such fills). A cached constant is reused only while its version
    /// counter is 0, i.e. while nothing wrote into it or into a view of it in place (were that
    /// to happen, backward's saved-tensor check would report it, not compute with the new value),
    /// and only constants made outside inference mode are cached.
    /// Not for tensors handed to users: they get their own `full_scalar`.
    pub(crate) fn constant(s: Scalar, dtype: DType, device: Device) -> Result<Tensor> {
        // under inference mode a new tensor is an inference tensor, which autograd refuses to
        // save later: such constants are made fresh and never cached
        if device == Device::Cpu || crate::autograd::is_inference_mode_enabled() {
            return Tensor::full_scalar(s, dtype, device);
        }
        let key = constant_key(s, dtype);
        let mut guard = CONSTANTS.lock().unwrap_or_else(|e| e.into_inner());
        let cache = guard.get_or_insert_with(Default::default);
        if let Some(t) = cache.get(&key) {
            if t.version() == 0 {
                return Ok(t.clone());
            }
        }
        let t = Tensor::full_scalar(s, dtype, device)?;
        if cache.len() >= MAX_CONSTANTS {
            // a loop uses a handful; more means values that change (a schedule's learning rate)
            cache.clear();
        }
        cache.insert(key, t.clone());
        Ok(t)
    }

    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape().clone(), self.dtype(), self.device())
    }
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape().clone(), self.dtype(), self.device())
    }
    pub fn full_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(self.shape().clone(), value, self.dtype(), self.device())
    }

    /// `start, start+step, ...` up to but excluding `end`. Integer dtypes count in integers
    /// (exact for any int64 range), float dtypes compute `start + i * step` in f64 and round
    /// once, as PyTorch does.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid("arange", format!("invalid range: start={start}, end={end}, step={step} (step must be finite and non-zero)")));
        }
        if (step > 0.0 && end < start) || (step < 0.0 && end > start) {
            return Err(Error::invalid(
                "arange",
                format!("upper bound and larger bound inconsistent with step sign (start={start}, end={end}, step={step})"),
            ));
        }
        let n = ((end - start) / step).ceil();
        if n > 1e15 {
            return Err(Error::invalid(
                "arange",
                format!("a range of {n} elements is too large"),
            ));
        }
        let shape = Shape::new(vec![n.max(0.0) as usize]);
        generate("arange", shape, dtype, device, |i| start + i as f64 * step)
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive. For integer dtypes the
    /// bounds are converted to integers first and each value truncated, as PyTorch does.
    pub fn linspace(
        start: f64,
        end: f64,
        steps: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let (start, end) = if dtype.is_float() {
            (start, end)
        } else {
            (start.trunc(), end.trunc())
        };
        let shape = Shape::new(vec![steps]);
        let step = if steps > 1 {
            (end - start) / (steps - 1) as f64
        } else {
            0.0
        };
        // fill from both ends so the last value is exactly `end` (as PyTorch does); one step
        // is `start`
        generate("linspace", shape, dtype, device, |i| {
            if i < steps / 2 || steps == 1 {
                start + step * i as f64
            } else {
                end - step * (steps - 1 - i) as f64
            }
        })
    }

    /// The `n x m` identity (ones on the main diagonal).
    pub fn eye(n: usize, m: usize, dtype: DType, device: Device) -> Result<Tensor> {
        let shape = Shape::new(vec![n, m]);
        generate("eye", shape, dtype, device, |i| {
            if m > 0 && i / m == i % m {
                1.0
            } else {
                0.0
            }
        })
    }

    /// Uniform samples in [0, 1).
    pub fn rand(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::uniform(shape, 0.0, 1.0, dtype, device)
    }

    /// Uniform samples in [lo, hi). float32 samples are drawn with 24 random bits (and float64
    /// with 53), so a sample never rounds up to `hi`.
    pub fn uniform(
        shape: impl Into<Shape>,
        lo: f64,
        hi: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let dtype = float_only("rand", dtype)?;
        check_uniform(lo, hi, dtype)?;
        let shape = shape.into();
        if dtype.is_storage_only() {
            // drawn in float32, rounded once (a float16 sample may round up to `hi`, as the
            // samples of PyTorch's half kernels can)
            let t = Tensor::uniform(shape, lo, hi, dtype.compute(), Device::Cpu)?;
            return t.to_dtype(dtype)?.to_device(device).map(|t| t.detach());
        }
        let t = with_rng(|r| match dtype {
            DType::F32 => {
                let (lo, span) = (lo as f32, (hi - lo) as f32);
                filled::<f32>("rand", &shape, |_| lo + span * r.uniform_f32())
                    .map(|v| Tensor::from_vec(v, shape.clone(), Device::Cpu))
            }
            _ => filled::<f64>("rand", &shape, |_| lo + (hi - lo) * r.uniform())
                .map(|v| Tensor::from_vec(v, shape.clone(), Device::Cpu)),
        })??;
        t.to_device(device).map(|t| t.detach())
    }

    /// Standard normal samples.
    pub fn randn(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::normal(shape, 0.0, 1.0, dtype, device)
    }

    /// Normal samples with the given mean and standard deviation (`std >= 0`).
    pub fn normal(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        if std.is_nan() || std < 0.0 {
            return Err(Error::invalid(
                "normal",
                format!("normal expects std >= 0.0, but found std {std}"),
            ));
        }
        let shape = shape.into();
        let dtype = float_only("randn", dtype)?;
        if dtype.is_storage_only() {
            let t = Tensor::normal(shape, mean, std, dtype.compute(), Device::Cpu)?;
            return t.to_dtype(dtype)?.to_device(device).map(|t| t.detach());
        }
        // Box-Muller makes values in pairs: keep the second of each pair for the next element
        let t = with_rng(|r| {
            let mut spare: Option<f64> = None;
            let mut next = move || match spare.take() {
                Some(v) => v,
                None => {
                    let (a, b) = r.normal_pair();
                    spare = Some(b);
                    a
                }
            };
            match dtype {
                DType::F32 => filled::<f32>("randn", &shape, |_| (mean + std * next()) as f32)
                    .map(|v| Tensor::from_vec(v, shape.clone(), Device::Cpu)),
                _ => filled::<f64>("randn", &shape, |_| mean + std * next())
                    .map(|v| Tensor::from_vec(v, shape.clone(), Device::Cpu)),
            }
        })??;
        t.to_device(device).map(|t| t.detach())
    }

    /// Uniform integers in [low, high).
    pub fn randint(low: i64, high: i64, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        if high <= low {
            return Err(Error::invalid(
                "randint",
                format!(
                    "random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
                ),
            ));
        }
        let shape = shape.into();
        let span = (high as i128 - low as i128) as u64;
        let mut v = alloc::<i64>("randint", &shape)?;
        with_rng(|r| {
            v.iter_mut()
                .for_each(|x| *x = (low as i128 + r.below(span) as i128) as i64)
        });
        Tensor::from_vec(v, shape, device)
    }

    /// A random permutation of `0..n` (Fisher-Yates on the global generator).
    pub fn randperm(n: usize, device: Device) -> Result<Tensor> {
        let shape = Shape::new(vec![n]);
        let mut v = alloc::<i64>("randperm", &shape)?;
        v.iter_mut().enumerate().for_each(|(i, x)| *x = i as i64);
        with_rng(|r| {
            for i in (1..n).rev() {
                let j = r.below(i as u64 + 1) as usize;
                v.swap(i, j);
            }
        });
        Tensor::from_vec(v, shape, device)
    }

    /// 1 with probability `p`, else 0 (used by dropout).
    pub fn bernoulli(
        shape: impl Into<Shape>,
        p: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "bernoulli",
                format!("probability must be in [0, 1], got {p}"),
            ));
        }
        let shape = shape.into();
        let mut bits: Vec<u8> = alloc::<u8>("bernoulli", &shape)?;
        with_rng(|r| bits.iter_mut().for_each(|x| *x = (r.uniform() < p) as u8));
        let t = Tensor::from_vec(bits, shape, Device::Cpu)?;
        let t = if dtype == DType::Bool {
            t
        } else {
            t.to_dtype(dtype)?
        };
        t.to_device(device)
    }

    /// In place: uniform samples in [from, to) (PyTorch's `uniform_`).
    pub fn uniform_(&self, from: f64, to: f64) -> Result<Tensor> {
        let _g = crate::no_grad();
        let dtype = float_only("uniform_", self.dtype())?;
        let r = Tensor::uniform(self.shape().clone(), from, to, dtype, self.device())?;
        self.copy_(&r)
    }

    /// In place: normal samples (PyTorch's `normal_`).
    pub fn normal_(&self, mean: f64, std: f64) -> Result<Tensor> {
        let _g = crate::no_grad();
        let dtype = float_only("normal_", self.dtype())?;
        let r = Tensor::normal(self.shape().clone(), mean, std, dtype, self.device())?;
        self.copy_(&r)
    }

    pub fn rand_like(&self) -> Result<Tensor> {
        Tensor::rand(self.shape().clone(), self.dtype(), self.device())
    }
    pub fn randn_like(&self) -> Result<Tensor> {
        Tensor::randn(self.shape().clone(), self.dtype(), self.device())
    }

    /// Builds a tensor of `dtype` from f64 values.
    pub fn from_f64s(v: Vec<f64>, shape: Shape, dtype: DType, device: Device) -> Result<Tensor> {
        if dtype == DType::F64 {
            return Tensor::from_vec(v, shape, device);
        }
        generate("tensor", shape, dtype, device, |i| v[i])
    }
}

/// A vector of `shape.numel()` elements `f(0), f(1), ...`, allocated through the checked path.
fn filled<T: Element>(
    op: &'static str,
    shape: &Shape,
    mut f: impl FnMut(usize) -> T,
) -> Result<Vec<T>> {
    let mut out = crate::cpu::buffer::alloc_for_overwrite::<T>(op, shape)?;
    out.iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
    Ok(out)
}

/// A tensor of `dtype` whose element `i` is `f(i)` converted once to `dtype`: no temporary of
/// another dtype, so a float32 constructor peaks at the size of its result.
fn generate(
    op: &'static str,
    shape: Shape,
    dtype: DType,
    device: Device,
    f: impl Fn(usize) -> f64,
) -> Result<Tensor> {
    shape.check_extents(op)?;
    let t = match dtype {
        DType::F64 => Tensor::from_vec(filled::<f64>(op, &shape, &f)?, shape, Device::Cpu)?,
        DType::F32 => Tensor::from_vec(
            filled::<f32>(op, &shape, |i| f(i) as f32)?,
            shape,
            Device::Cpu,
        )?,
        DType::I64 => Tensor::from_vec(
            filled::<i64>(op, &shape, |i| f(i) as i64)?,
            shape,
            Device::Cpu,
        )?,
        DType::Bool => Tensor::from_vec(
            filled::<u8>(op, &shape, |i| (f(i) != 0.0) as u8)?,
            shape,
            Device::Cpu,
        )?,
        // storage dtypes: made in the compute dtype, then rounded once
        d => generate(op, shape, d.compute(), Device::Cpu, f)?.to_dtype(d)?,
    };
    t.to_device(device).map(|t| t.detach())
}

#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(from <= to)` is also true for NaN
fn check_uniform(from: f64, to: f64, dtype: DType) -> Result<()> {
    if !(from <= to) || !from.is_finite() || !to.is_finite() {
        return Err(Error::invalid(
            "uniform_",
            format!("uniform_ expects to return a [from, to) range, but found from={from} > to={to} (both must be finite)"),
        ));
    }
    // a wider span would scale the samples to inf
    let max = dtype.finite_max();
    if !(to - from <= max) {
        return Err(Error::invalid(
            "uniform_",
            format!("uniform_ expects to-from <= the largest {dtype} ({max:e}), but found to={to} and from={from}, which would result in overflow"),
        ));
    }
    Ok(())
}

fn float_only(op: &'static str, dtype: DType) -> Result<DType> {
    if dtype.is_float() {
        Ok(dtype)
    } else {
        Err(Error::DType {
            op,
            dtype,
            detail: " (random floats need float32 or float64)".into(),
        })
    }
}
