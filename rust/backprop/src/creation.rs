//! Tensor constructors: constants, ranges, identity, and random tensors from the global generator.

use crate::cpu::buffer::alloc;
use crate::random::with_rng;
use crate::storage::Storage;
use crate::{DType, Device, Element, Error, Result, Scalar, Shape, Tensor};

impl Tensor {
    /// A tensor of `shape` filled with `value`.
    pub fn full(
        shape: impl Into<Shape>,
        value: f64,
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
        Tensor::full(Shape::scalar(), s.to_f64(), dtype, device)
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

    /// `start, start+step, ...` up to but excluding `end`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid("arange", format!("invalid range: start={start}, end={end}, step={step} (step must be finite and non-zero)")));
        }
        let n = ((end - start) / step).ceil();
        if n > 1e15 {
            return Err(Error::invalid(
                "arange",
                format!("a range of {n} elements is too large"),
            ));
        }
        let shape = Shape::new(vec![n.max(0.0) as usize]);
        let mut v = alloc::<f64>("arange", &shape)?;
        v.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = start + i as f64 * step);
        Tensor::from_f64s(v, shape, dtype, device)
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive.
    pub fn linspace(
        start: f64,
        end: f64,
        steps: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = Shape::new(vec![steps]);
        let mut v = alloc::<f64>("linspace", &shape)?;
        if steps == 1 {
            v[0] = start;
        } else if steps > 1 {
            let step = (end - start) / (steps - 1) as f64;
            // fill from both ends so the last value is exactly `end` (as PyTorch does)
            v.iter_mut().enumerate().for_each(|(i, x)| {
                *x = if i < steps / 2 {
                    start + step * i as f64
                } else {
                    end - step * (steps - 1 - i) as f64
                }
            });
        }
        Tensor::from_f64s(v, shape, dtype, device)
    }

    /// The `n x m` identity (ones on the main diagonal).
    pub fn eye(n: usize, m: usize, dtype: DType, device: Device) -> Result<Tensor> {
        let shape = Shape::new(vec![n, m]);
        let mut v = alloc::<f64>("eye", &shape)?;
        for i in 0..n.min(m) {
            v[i * m + i] = 1.0;
        }
        Tensor::from_f64s(v, shape, dtype, device)
    }

    /// Uniform samples in [0, 1).
    pub fn rand(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::uniform(shape, 0.0, 1.0, dtype, device)
    }

    /// Uniform samples in [lo, hi).
    pub fn uniform(
        shape: impl Into<Shape>,
        lo: f64,
        hi: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let dtype = float_only("rand", dtype)?;
        let mut v = alloc::<f64>("rand", &shape)?;
        with_rng(|r| v.iter_mut().for_each(|x| *x = lo + (hi - lo) * r.uniform()));
        Tensor::from_f64s(v, shape, dtype, device)
    }

    /// Standard normal samples.
    pub fn randn(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::normal(shape, 0.0, 1.0, dtype, device)
    }

    /// Normal samples with the given mean and standard deviation.
    pub fn normal(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let dtype = float_only("randn", dtype)?;
        let mut v = alloc::<f64>("randn", &shape)?;
        with_rng(|r| r.fill_normal(&mut v));
        if mean != 0.0 || std != 1.0 {
            v.iter_mut().for_each(|x| *x = mean + std * *x);
        }
        Tensor::from_f64s(v, shape, dtype, device)
    }

    /// Uniform integers in [low, high).
    pub fn randint(low: i64, high: i64, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        if high <= low {
            return Err(Error::invalid(
                "randint",
                format!("empty range: low={low} must be less than high={high}"),
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
        let mut v: Vec<i64> = (0..n as i64).collect();
        with_rng(|r| {
            for i in (1..n).rev() {
                let j = r.below(i as u64 + 1) as usize;
                v.swap(i, j);
            }
        });
        Tensor::from_vec(v, [n], device)
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
        let mut v = alloc::<f64>("bernoulli", &shape)?;
        with_rng(|r| {
            v.iter_mut()
                .for_each(|x| *x = if r.uniform() < p { 1.0 } else { 0.0 })
        });
        Tensor::from_f64s(v, shape, dtype, device)
    }

    pub fn rand_like(&self) -> Result<Tensor> {
        Tensor::rand(self.shape().clone(), self.dtype(), self.device())
    }
    pub fn randn_like(&self) -> Result<Tensor> {
        Tensor::randn(self.shape().clone(), self.dtype(), self.device())
    }

    /// Builds a tensor of `dtype` from f64 values (the common path of the constructors above).
    pub fn from_f64s(v: Vec<f64>, shape: Shape, dtype: DType, device: Device) -> Result<Tensor> {
        fn conv<T: Element>(v: &[f64], shape: &Shape) -> Result<Vec<T>> {
            let mut out = alloc::<T>("tensor", shape)?;
            out.iter_mut()
                .zip(v)
                .for_each(|(o, &x)| *o = T::from_f64(x));
            Ok(out)
        }
        match dtype {
            DType::F64 => Tensor::from_vec(v, shape, device),
            DType::F32 => Tensor::from_vec(conv::<f32>(&v, &shape)?, shape, device),
            DType::I64 => Tensor::from_vec(conv::<i64>(&v, &shape)?, shape, device),
            DType::Bool => Tensor::from_vec(conv::<u8>(&v, &shape)?, shape, device),
        }
    }
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
