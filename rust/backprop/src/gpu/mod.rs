//! The GPU backend: WGSL compute shaders (`shaders/`) run through `wgpu` on Vulkan, Metal, DX12
//! or GL, on the first adapter chosen by `context.rs`.
//!
//! Files, one concept each: `context` (adapter/device/queue, created once; error capture),
//! `buffer` (pooled device memory), `pipeline` (compiled-pipeline cache over the sources of
//! `crate::wgsl`), `dispatch` (recording and batched submission, readback, device-side bounds
//! checks), `common` (what every launcher shares), one launcher file per kernel family
//! mirroring `shaders/` (`elementwise`, `reduce` (with softmax), `attention`, `matmul`, `index`, `conv`,
//! `optim`), and `stats` (counters of submissions, dispatches, bind groups, buffers: what a step
//! costs the host).
//!
//! Device representation of the dtypes: float32 is one 32-bit word, bool a 0/1 word, and
//! **int64 two words** (low word first, the CPU's little-endian bytes): WGSL has no 64-bit
//! integers, so the kernels emulate int64 arithmetic, comparisons, reductions, casts and
//! indexing on word pairs (`shaders/common.wgsl`), with the CPU's wrapping semantics.
//! **float64 is not available** (WGSL has no f64): creating, moving or casting to a float64
//! tensor on the GPU is an `Error::Unsupported` naming the op, the dtype and the device.
//!
//! ```no_run
//! use backprop::{Device, DType, Tensor};
//! if backprop::gpu::is_available() {
//!     let x = Tensor::randn([256, 128], DType::F32, Device::Gpu)?.requires_grad_(true)?;
//!     let y = x.matmul(&x.t()?)?.relu()?.sum_all()?;   // queued on the GPU
//!     y.backward()?;
//!     println!("{}", y.item()?);                       // readback happens here
//! }
//! # Ok::<(), backprop::Error>(())
//! ```

pub(crate) mod attention;
mod buffer;
mod common;
mod context;
mod conv;
mod disk_cache;
mod dispatch;
mod elementwise;
mod index;
pub(crate) mod layer_norm;
mod matmul;
mod optim;
mod pipeline;
mod reduce;
pub(crate) mod sort;
mod stats;

pub use buffer::{buffers_created, memory_stats, reset_peak_memory};
pub use context::AdapterInfo;
pub use stats::{counters, Counters};

use crate::backend::BackendStorage;
use crate::cpu::CpuStorage;
use crate::op::{ArgReduceOp, BinaryOp, CmpOp, ReduceOp, ScatterReduce, UnaryOp, Window};
use crate::{DType, Device, Error, Layout, Result, Scalar, Shape};
use buffer::GpuBuffer;

/// Whether a GPU adapter with compute shaders exists (creates the device on first call).
pub fn is_available() -> bool {
    context::context().is_ok()
}

/// The adapter the engine runs on, or the error saying why there is none.
pub fn adapter_info() -> Result<AdapterInfo> {
    Ok(context::adapter_info(context::context()?))
}

/// Submits all queued GPU work and waits for it to finish; reports any error the device raised.
pub fn synchronize() -> Result<()> {
    context::context()?.synchronize("synchronize")
}

/// Writes the compiled pipelines to the on-disk cache now (if any were compiled since the last
/// write), so that the next run starts faster; see `gpu/disk_cache.rs`. A no-op without a GPU,
/// on backends without pipeline caches, or with `BACKPROP_PIPELINE_CACHE=off`.
pub fn save_pipeline_cache() {
    // never starts a device (Python calls this at exit)
    if let Some(d) = context::existing().and_then(|ctx| ctx.disk.as_ref()) {
        d.save();
    }
}

/// The file the compiled pipelines are cached in, if this device has one.
pub fn pipeline_cache_path() -> Option<std::path::PathBuf> {
    context::context()
        .ok()?
        .disk
        .as_ref()
        .map(|d| d.path.clone())
}

/// Releases the device buffers the pool keeps for reuse (live tensors are untouched).
pub fn empty_cache() -> Result<()> {
    let ctx = context::context()?;
    ctx.synchronize("empty_cache")?;
    crate::creation::clear_constants();
    ctx.release_cached();
    Ok(())
}

/// Device memory of one tensor storage: `len` words of `dtype`'s device form.
pub struct GpuStorage {
    buf: GpuBuffer,
    len: usize,
    dtype: DType,
}

impl GpuStorage {
    /// Uploads the elements of a strided CPU view as a contiguous GPU storage.
    pub fn from_cpu(cpu: &CpuStorage, l: &Layout) -> Result<GpuStorage> {
        const OP: &str = "to";
        let dtype = cpu.dtype();
        if dtype == DType::F64 {
            return Err(common::f64_unsupported(OP));
        }
        if dtype.is_storage_only() {
            return Err(common::storage_dtype_unsupported(OP, dtype));
        }
        let n = l.numel();
        // a contiguous view is uploaded in place; anything else is packed on the CPU first
        let packed;
        let (src, start) = match l.contiguous_range() {
            Some((start, _)) => (cpu, start),
            None => {
                packed = cpu.copy_strided(l)?;
                (&packed, 0)
            }
        };
        // float32 and int64 are uploaded as their bytes (int64's two words are its
        // little-endian halves); bool bytes widen to words
        let widened: Vec<u8>;
        let bytes: &[u8] = match dtype {
            DType::F32 => bytemuck::cast_slice(slice::<f32>(src, start, n)?),
            DType::I64 => bytemuck::cast_slice(slice::<i64>(src, start, n)?),
            DType::Bool => {
                widened = slice::<u8>(src, start, n)?
                    .iter()
                    .flat_map(|&b| ((b != 0) as u32).to_ne_bytes())
                    .collect();
                &widened
            }
            DType::F64 => return Err(common::f64_unsupported(OP)),
            d => return Err(common::storage_dtype_unsupported(OP, d)),
        };
        let out = GpuStorage {
            buf: buffer::alloc(OP, l.shape(), dtype)?,
            len: n,
            dtype,
        };
        context::context()?.upload(out.buf.raw(), bytes);
        Ok(out)
    }

    /// Reads the elements of a strided view back into a contiguous CPU storage (waits for the
    /// device).
    pub fn to_cpu(&self, l: &Layout) -> Result<CpuStorage> {
        const OP: &str = "to";
        let ctx = context::context()?;
        let n = l.numel();
        let packed;
        let (buf, start) = match l.contiguous_range() {
            Some((start, _)) => (&self.buf, start),
            None => {
                packed = elementwise::copy_strided(self, l)?;
                (&packed.buf, 0)
            }
        };
        let elem = buffer::words_per(self.dtype) as u64 * buffer::WORD;
        let bytes = ctx.read(OP, buf.raw(), start as u64 * elem, n as u64 * elem)?;
        Ok(match self.dtype {
            DType::F32 => CpuStorage::from_vec(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)),
            DType::I64 => CpuStorage::from_vec(bytemuck::pod_collect_to_vec::<u8, i64>(&bytes)),
            DType::Bool => {
                let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
                CpuStorage::from_vec(
                    words
                        .into_iter()
                        .map(|w| (w != 0) as u8)
                        .collect::<Vec<u8>>(),
                )
            }
            DType::F64 => return Err(common::f64_unsupported(OP)),
            d => return Err(common::storage_dtype_unsupported(OP, d)),
        })
    }
}

fn slice<T: crate::Element>(s: &CpuStorage, start: usize, n: usize) -> Result<&[T]> {
    s.as_slice::<T>()
        .and_then(|all| all.get(start..start + n))
        .ok_or_else(|| {
            Error::invalid(
                "to",
                format!(
                    "a view of {n} elements at offset {start} does not fit its {} storage",
                    s.dtype()
                ),
            )
        })
}

impl BackendStorage for GpuStorage {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn device(&self) -> Device {
        Device::Gpu
    }
    fn len(&self) -> usize {
        self.len
    }
    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> {
        elementwise::unary(self, l, op)
    }
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
        elementwise::binary(self, l, rhs, rl, op)
    }
    fn compare(&self, l: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
        elementwise::compare(self, l, rhs, rl, op)
    }
    fn where_cond(&self, l: &Layout, t: &Self, tl: &Layout, f: &Self, fl: &Layout) -> Result<Self> {
        elementwise::where_cond(self, l, t, tl, f, fl)
    }
    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        elementwise::cast(self, l, dtype)
    }
    fn reduce(&self, l: &Layout, op: ReduceOp, dims: &[usize]) -> Result<Self> {
        reduce::reduce(self, l, op, dims)
    }
    fn arg_reduce(&self, l: &Layout, op: ArgReduceOp, dim: usize) -> Result<Self> {
        reduce::arg_reduce(self, l, op, dim)
    }
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
        matmul::matmul(self, l, rhs, rl)
    }
    fn copy_strided(&self, l: &Layout) -> Result<Self> {
        elementwise::copy_strided(self, l)
    }
    fn copy_into(&mut self, dl: &Layout, src: &Self, sl: &Layout) -> Result<()> {
        elementwise::copy_into(self, dl, src, sl)
    }
    fn gather(&self, l: &Layout, dim: usize, index: &Self, il: &Layout) -> Result<Self> {
        index::gather(self, l, dim, index, il)
    }
    fn scatter(
        &self,
        l: &Layout,
        dim: usize,
        index: &Self,
        il: &Layout,
        src: &Self,
        sl: &Layout,
        reduce: ScatterReduce,
    ) -> Result<Self> {
        index::scatter(self, l, dim, index, il, src, sl, reduce)
    }
    fn index_select(&self, l: &Layout, dim: usize, index: &Self, il: &Layout) -> Result<Self> {
        index::index_select(self, l, dim, index, il)
    }
    fn index_add(
        &self,
        l: &Layout,
        dim: usize,
        index: &Self,
        il: &Layout,
        src: &Self,
        sl: &Layout,
    ) -> Result<Self> {
        index::index_add(self, l, dim, index, il, src, sl)
    }
    fn unary_backward(&self, l: &Layout, g: (&Self, &Layout), op: UnaryOp) -> Result<Self> {
        elementwise::unary_backward((self, l), g, op)
    }
    fn layer_norm(&self, l: &Layout, len: usize, eps: f64) -> Result<(Self, Self)> {
        layer_norm::forward((self, l), len, eps)
    }
    fn layer_norm_backward(
        &self,
        gl: &Layout,
        x: (&Self, &Layout),
        stats: (&Self, &Layout),
        len: usize,
    ) -> Result<Self> {
        layer_norm::backward((self, gl), x, stats, len)
    }
    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self> {
        reduce::softmax(self, l, dim, log)
    }
    fn lstm_cell(&self, pl: &Layout, cp: (&Self, &Layout)) -> Result<(Self, Self, Self)> {
        elementwise::lstm_cell((self, pl), cp)
    }
    fn lstm_cell_backward(
        &self,
        al: &Layout,
        c: (&Self, &Layout),
        cp: (&Self, &Layout),
        dh: (&Self, &Layout),
        dc: (&Self, &Layout),
    ) -> Result<(Self, Self)> {
        elementwise::lstm_cell_backward((self, al), c, cp, dh, dc)
    }
    fn attention(
        &self,
        ql: &Layout,
        k: (&Self, &Layout),
        v: (&Self, &Layout),
        spec: crate::op::AttentionSpec,
    ) -> Result<(Self, Self)> {
        attention::forward((self, ql), k, v, spec)
    }
    fn attention_backward(
        &self,
        ql: &Layout,
        k: (&Self, &Layout),
        v: (&Self, &Layout),
        g: (&Self, &Layout),
        stats: (&Self, &Layout),
        spec: crate::op::AttentionSpec,
    ) -> Result<(Self, Self, Self)> {
        attention::backward((self, ql), k, v, g, stats, spec)
    }
    fn softmax_backward(
        &self,
        l: &Layout,
        y: &Self,
        yl: &Layout,
        dim: usize,
        log: bool,
    ) -> Result<Self> {
        reduce::softmax_backward(self, l, y, yl, dim, log)
    }
    fn unfold(&self, l: &Layout, w: &Window, pad_value: f64) -> Result<Self> {
        conv::unfold(self, l, w, pad_value)
    }
    fn argsort_rows(&self, l: &Layout, descending: bool) -> Result<Self> {
        sort::argsort_rows(self, l, descending)
    }
    fn fold(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self> {
        conv::fold(self, l, w, out_hw)
    }
    fn pool_argmax(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self> {
        conv::pool_argmax(self, l, w, out_hw)
    }
    fn fused_update(
        &mut self,
        l: &Layout,
        grad: &Self,
        gl: &Layout,
        states: &mut [(&mut Self, &Layout)],
        rule: &crate::optim::rule::Rule,
    ) -> Result<()> {
        optim::fused_update(self, l, grad, gl, states, rule)
    }
    fn full(shape: &Shape, value: Scalar, dtype: DType) -> Result<Self> {
        elementwise::full(shape, value, dtype)
    }
}
