//! Device-tagged storage. Each method dispatches to the backend that owns both operands; mixing
//! devices is an error naming both.

use crate::backend::BackendStorage;
use crate::cpu::CpuStorage;
#[cfg(feature = "gpu")]
use crate::gpu::GpuStorage;
use crate::op::{
    ArgReduceOp, AttentionSpec, BinaryOp, CmpOp, ReduceOp, ScatterReduce, UnaryOp, Window,
};
use crate::{DType, Device, Error, Layout, Result, Scalar, Shape};

pub enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "gpu")]
    Gpu(GpuStorage),
}

/// Dispatch a unary-storage call.
macro_rules! one {
    ($s:expr, |$b:ident| $body:expr) => {
        match $s {
            Storage::Cpu($b) => Ok(Storage::Cpu($body?)),
            #[cfg(feature = "gpu")]
            Storage::Gpu($b) => Ok(Storage::Gpu($body?)),
        }
    };
}

/// Dispatch a call on several storages that must share a device.
macro_rules! same_device {
    ($op:expr, ($($s:expr),+), |$($b:ident),+| $body:expr) => {{
        #[allow(unreachable_patterns)]
        match ($($s),+) {
            ($(Storage::Cpu($b)),+) => Ok(Storage::Cpu($body?)),
            #[cfg(feature = "gpu")]
            ($(Storage::Gpu($b)),+) => Ok(Storage::Gpu($body?)),
            _ => Err(crate::storage::device_mismatch($op, &[$($s.device()),+])),
        }
    }};
}

pub(crate) fn device_mismatch(op: &'static str, devices: &[Device]) -> Error {
    let lhs = devices[0];
    let rhs = devices.iter().copied().find(|&d| d != lhs).unwrap_or(lhs);
    Error::DeviceMismatch { op, lhs, rhs }
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => Device::Gpu,
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(s) => s.dtype(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_cpu(&self) -> Option<&CpuStorage> {
        match self {
            Storage::Cpu(s) => Some(s),
            #[cfg(feature = "gpu")]
            _ => None,
        }
    }

    pub fn full(shape: &Shape, value: Scalar, dtype: DType, device: Device) -> Result<Storage> {
        shape.check_extents("full")?;
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuStorage::full(shape, value, dtype)?)),
            #[cfg(feature = "gpu")]
            Device::Gpu => Ok(Storage::Gpu(GpuStorage::full(shape, value, dtype)?)),
            #[cfg(not(feature = "gpu"))]
            Device::Gpu => Err(crate::gpu_unavailable()),
        }
    }

    /// A contiguous copy on `device`.
    pub fn to_device(&self, l: &Layout, device: Device) -> Result<Storage> {
        match (self, device) {
            (Storage::Cpu(s), Device::Cpu) => Ok(Storage::Cpu(s.copy_strided(l)?)),
            #[cfg(feature = "gpu")]
            (Storage::Gpu(s), Device::Gpu) => Ok(Storage::Gpu(s.copy_strided(l)?)),
            #[cfg(feature = "gpu")]
            (Storage::Cpu(s), Device::Gpu) => Ok(Storage::Gpu(GpuStorage::from_cpu(s, l)?)),
            #[cfg(feature = "gpu")]
            (Storage::Gpu(s), Device::Cpu) => Ok(Storage::Cpu(s.to_cpu(l)?)),
            #[cfg(not(feature = "gpu"))]
            (Storage::Cpu(_), Device::Gpu) => Err(crate::gpu_unavailable()),
        }
    }

    pub fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Storage> {
        one!(self, |s| s.unary(l, op))
    }
    pub fn binary(&self, l: &Layout, rhs: &Storage, rl: &Layout, op: BinaryOp) -> Result<Storage> {
        same_device!(op.name(), (self, rhs), |a, b| a.binary(l, b, rl, op))
    }
    pub fn compare(&self, l: &Layout, rhs: &Storage, rl: &Layout, op: CmpOp) -> Result<Storage> {
        same_device!(op.name(), (self, rhs), |a, b| a.compare(l, b, rl, op))
    }
    pub fn where_cond(
        &self,
        l: &Layout,
        t: &Storage,
        tl: &Layout,
        f: &Storage,
        fl: &Layout,
    ) -> Result<Storage> {
        same_device!("where", (self, t, f), |c, a, b| c
            .where_cond(l, a, tl, b, fl))
    }
    pub fn cast(&self, l: &Layout, dtype: DType) -> Result<Storage> {
        one!(self, |s| s.cast(l, dtype))
    }
    pub fn reduce(&self, l: &Layout, op: ReduceOp, dims: &[usize]) -> Result<Storage> {
        one!(self, |s| s.reduce(l, op, dims))
    }
    pub fn arg_reduce(&self, l: &Layout, op: ArgReduceOp, dim: usize) -> Result<Storage> {
        one!(self, |s| s.arg_reduce(l, op, dim))
    }
    pub fn matmul(&self, l: &Layout, rhs: &Storage, rl: &Layout) -> Result<Storage> {
        same_device!("matmul", (self, rhs), |a, b| a.matmul(l, b, rl))
    }
    pub fn copy_strided(&self, l: &Layout) -> Result<Storage> {
        one!(self, |s| s.copy_strided(l))
    }
    pub fn copy_into(&mut self, dl: &Layout, src: &Storage, sl: &Layout) -> Result<()> {
        let (dd, sd) = (self.device(), src.device());
        match (self, src) {
            (Storage::Cpu(d), Storage::Cpu(s)) => d.copy_into(dl, s, sl),
            #[cfg(feature = "gpu")]
            (Storage::Gpu(d), Storage::Gpu(s)) => d.copy_into(dl, s, sl),
            #[allow(unreachable_patterns)]
            _ => Err(device_mismatch("copy_", &[dd, sd])),
        }
    }
    pub fn gather(&self, l: &Layout, dim: usize, index: &Storage, il: &Layout) -> Result<Storage> {
        same_device!("gather", (self, index), |a, i| a.gather(l, dim, i, il))
    }
    #[allow(clippy::too_many_arguments)]
    pub fn scatter(
        &self,
        l: &Layout,
        dim: usize,
        index: &Storage,
        il: &Layout,
        src: &Storage,
        sl: &Layout,
        reduce: ScatterReduce,
    ) -> Result<Storage> {
        same_device!("scatter", (self, index, src), |a, i, s| a
            .scatter(l, dim, i, il, s, sl, reduce))
    }
    pub fn index_select(
        &self,
        l: &Layout,
        dim: usize,
        index: &Storage,
        il: &Layout,
    ) -> Result<Storage> {
        same_device!("index_select", (self, index), |a, i| a
            .index_select(l, dim, i, il))
    }
    pub fn index_add(
        &self,
        l: &Layout,
        dim: usize,
        index: &Storage,
        il: &Layout,
        src: &Storage,
        sl: &Layout,
    ) -> Result<Storage> {
        same_device!("index_add", (self, index, src), |a, i, s| a
            .index_add(l, dim, i, il, s, sl))
    }
    pub fn attention(
        &self,
        ql: &Layout,
        (k, kl): (&Storage, &Layout),
        (v, vl): (&Storage, &Layout),
        spec: AttentionSpec,
    ) -> Result<(Storage, Storage)> {
        match (self, k, v) {
            (Storage::Cpu(q), Storage::Cpu(k), Storage::Cpu(v)) => {
                let (o, l) = q.attention(ql, (k, kl), (v, vl), spec)?;
                Ok((Storage::Cpu(o), Storage::Cpu(l)))
            }
            #[cfg(feature = "gpu")]
            (Storage::Gpu(q), Storage::Gpu(k), Storage::Gpu(v)) => {
                let (o, l) = q.attention(ql, (k, kl), (v, vl), spec)?;
                Ok((Storage::Gpu(o), Storage::Gpu(l)))
            }
            #[allow(unreachable_patterns)]
            _ => Err(device_mismatch(
                "scaled_dot_product_attention",
                &[self.device(), k.device(), v.device()],
            )),
        }
    }
    pub fn attention_backward(
        &self,
        ql: &Layout,
        (k, kl): (&Storage, &Layout),
        (v, vl): (&Storage, &Layout),
        (g, gl): (&Storage, &Layout),
        (st, sl): (&Storage, &Layout),
        spec: AttentionSpec,
    ) -> Result<(Storage, Storage, Storage)> {
        match (self, k, v, g, st) {
            (
                Storage::Cpu(q),
                Storage::Cpu(k),
                Storage::Cpu(v),
                Storage::Cpu(g),
                Storage::Cpu(st),
            ) => {
                let (a, b, c) =
                    q.attention_backward(ql, (k, kl), (v, vl), (g, gl), (st, sl), spec)?;
                Ok((Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(c)))
            }
            #[cfg(feature = "gpu")]
            (
                Storage::Gpu(q),
                Storage::Gpu(k),
                Storage::Gpu(v),
                Storage::Gpu(g),
                Storage::Gpu(st),
            ) => {
                let (a, b, c) =
                    q.attention_backward(ql, (k, kl), (v, vl), (g, gl), (st, sl), spec)?;
                Ok((Storage::Gpu(a), Storage::Gpu(b), Storage::Gpu(c)))
            }
            #[allow(unreachable_patterns)]
            _ => Err(device_mismatch(
                "scaled_dot_product_attention_backward",
                &[
                    self.device(),
                    k.device(),
                    v.device(),
                    g.device(),
                    st.device(),
                ],
            )),
        }
    }
    pub fn lstm_cell(
        &self,
        pl: &Layout,
        (cp, cl): (&Storage, &Layout),
    ) -> Result<(Storage, Storage, Storage)> {
        match (self, cp) {
            (Storage::Cpu(p), Storage::Cpu(c)) => {
                let (a, b, d) = p.lstm_cell(pl, (c, cl))?;
                Ok((Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(d)))
            }
            #[cfg(feature = "gpu")]
            (Storage::Gpu(p), Storage::Gpu(c)) => {
                let (a, b, d) = p.lstm_cell(pl, (c, cl))?;
                Ok((Storage::Gpu(a), Storage::Gpu(b), Storage::Gpu(d)))
            }
            #[allow(unreachable_patterns)]
            _ => Err(device_mismatch("lstm_cell", &[self.device(), cp.device()])),
        }
    }
    pub fn lstm_cell_backward(
        &self,
        al: &Layout,
        (c, cl): (&Storage, &Layout),
        (cp, cpl): (&Storage, &Layout),
        (dh, dhl): (&Storage, &Layout),
        (dc, dcl): (&Storage, &Layout),
    ) -> Result<(Storage, Storage)> {
        match (self, c, cp, dh, dc) {
            (
                Storage::Cpu(a),
                Storage::Cpu(c),
                Storage::Cpu(p),
                Storage::Cpu(h),
                Storage::Cpu(d),
            ) => {
                let (x, y) = a.lstm_cell_backward(al, (c, cl), (p, cpl), (h, dhl), (d, dcl))?;
                Ok((Storage::Cpu(x), Storage::Cpu(y)))
            }
            #[cfg(feature = "gpu")]
            (
                Storage::Gpu(a),
                Storage::Gpu(c),
                Storage::Gpu(p),
                Storage::Gpu(h),
                Storage::Gpu(d),
            ) => {
                let (x, y) = a.lstm_cell_backward(al, (c, cl), (p, cpl), (h, dhl), (d, dcl))?;
                Ok((Storage::Gpu(x), Storage::Gpu(y)))
            }
            #[allow(unreachable_patterns)]
            _ => Err(device_mismatch(
                "lstm_cell_backward",
                &[
                    self.device(),
                    c.device(),
                    cp.device(),
                    dh.device(),
                    dc.device(),
                ],
            )),
        }
    }
    pub fn unary_backward(
        &self,
        l: &Layout,
        g: &Storage,
        gl: &Layout,
        op: UnaryOp,
    ) -> Result<Storage> {
        same_device!(op.name(), (self, g), |a, g| a.unary_backward(
            l,
            (g, gl),
            op
        ))
    }
    pub fn layer_norm(&self, l: &Layout, len: usize, eps: f64) -> Result<(Storage, Storage)> {
        match self {
            Storage::Cpu(x) => {
                let (y, st) = x.layer_norm(l, len, eps)?;
                Ok((Storage::Cpu(y), Storage::Cpu(st)))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(x) => {
                let (y, st) = x.layer_norm(l, len, eps)?;
                Ok((Storage::Gpu(y), Storage::Gpu(st)))
            }
        }
    }
    pub fn layer_norm_backward(
        &self,
        gl: &Layout,
        (x, xl): (&Storage, &Layout),
        (st, sl): (&Storage, &Layout),
        len: usize,
    ) -> Result<Storage> {
        same_device!("layer_norm_backward", (self, x, st), |g, x, st| g
            .layer_norm_backward(gl, (x, xl), (st, sl), len))
    }
    pub fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Storage> {
        one!(self, |s| s.softmax(l, dim, log))
    }
    pub fn softmax_backward(
        &self,
        l: &Layout,
        y: &Storage,
        yl: &Layout,
        dim: usize,
        log: bool,
    ) -> Result<Storage> {
        let op = if log {
            "log_softmax_backward"
        } else {
            "softmax_backward"
        };
        same_device!(op, (self, y), |g, y| g.softmax_backward(l, y, yl, dim, log))
    }
    /// The fused optimizer step (see `BackendStorage::fused_update`); every operand must be on
    /// this storage's device.
    pub fn fused_update(
        &mut self,
        l: &Layout,
        grad: &Storage,
        gl: &Layout,
        states: &mut [(&mut Storage, &Layout)],
        rule: &crate::optim::rule::Rule,
    ) -> Result<()> {
        const OP: &str = "optimizer step";
        let dev = self.device();
        for d in std::iter::once(grad.device()).chain(states.iter().map(|(s, _)| s.device())) {
            if d != dev {
                return Err(device_mismatch(OP, &[dev, d]));
            }
        }
        let internal = || Error::invalid(OP, "internal: device mismatch after the check");
        match (self, grad) {
            (Storage::Cpu(p), Storage::Cpu(g)) => {
                let mut st: Vec<(&mut CpuStorage, &Layout)> = states
                    .iter_mut()
                    .map(|(s, sl)| match &mut **s {
                        Storage::Cpu(c) => Ok((c, *sl)),
                        #[allow(unreachable_patterns)]
                        _ => Err(internal()),
                    })
                    .collect::<Result<_>>()?;
                p.fused_update(l, g, gl, &mut st, rule)
            }
            #[cfg(feature = "gpu")]
            (Storage::Gpu(p), Storage::Gpu(g)) => {
                let mut st: Vec<(&mut GpuStorage, &Layout)> = states
                    .iter_mut()
                    .map(|(s, sl)| match &mut **s {
                        Storage::Gpu(c) => Ok((c, *sl)),
                        _ => Err(internal()),
                    })
                    .collect::<Result<_>>()?;
                p.fused_update(l, g, gl, &mut st, rule)
            }
            #[allow(unreachable_patterns)]
            _ => Err(internal()),
        }
    }

    pub fn argsort_rows(&self, l: &Layout, descending: bool) -> Result<Storage> {
        one!(self, |s| s.argsort_rows(l, descending))
    }
    pub fn unfold(&self, l: &Layout, w: &Window, pad_value: f64) -> Result<Storage> {
        one!(self, |s| s.unfold(l, w, pad_value))
    }
    pub fn fold(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Storage> {
        one!(self, |s| s.fold(l, w, out_hw))
    }
    pub fn pool_argmax(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Storage> {
        one!(self, |s| s.pool_argmax(l, w, out_hw))
    }
}
