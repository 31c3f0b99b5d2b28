//! The tensor: a cheap handle (`Arc`) to storage + layout + autograd metadata.
//!
//! Cloning a `Tensor` clones the handle, not the data. Views share the storage `Arc` and differ
//! only in layout. A tensor made by an op while grad mode is on and some input requires grad
//! remembers that op (and through it its inputs): that chain is the computation graph.
//!
//! Invariant relied on by zero-copy export: a storage's memory never moves or is replaced while the
//! storage lives (in-place ops write into it; nothing reallocates it).

use crate::autograd;
use crate::cpu::CpuStorage;
use crate::op::{Op, ViewKind};
use crate::storage::Storage;
use crate::{DType, Device, Element, Error, Layout, Result, Shape};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Identity of a tensor (not of its storage): views get their own ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many tensor handles' targets are alive right now (views and graph intermediates included).
/// Tests use it to prove graphs are freed and training loops do not leak.
pub fn live_tensors() -> usize {
    LIVE.load(Ordering::Relaxed)
}

pub(crate) struct TensorImpl {
    id: TensorId,
    storage: Arc<RwLock<Storage>>,
    layout: Layout,
    dtype: DType,
    device: Device,
    requires_grad: AtomicBool,
    /// Made by the user (or by an op that recorded nothing), not by a recorded op.
    is_leaf: bool,
    /// The op that made this tensor; taken (freed) by backward unless the graph is retained.
    op: Mutex<Option<Op>>,
    /// Name of the recording op; kept after backward frees the op itself (PyTorch keeps grad_fn).
    op_name: Option<&'static str>,
    grad: Mutex<Option<Tensor>>,
    retains_grad: AtomicBool,
}

/// An n-dimensional array on a device, with reverse-mode autodiff.
///
/// ```
/// use backprop::{Tensor, DType, Device};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], Device::Cpu)?.requires_grad_(true)?;
/// let y = x.mul(&x)?.sum_all()?;          // y = sum(x^2)
/// y.backward()?;
/// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, vec![2.0, 4.0, 6.0]);
/// # Ok::<(), backprop::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorImpl>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data; the data is
    // still a valid value, so carry on rather than propagate the panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tensor {
    // ---------------------------------------------------------------- construction (internal)

    fn build(
        storage: Arc<RwLock<Storage>>,
        layout: Layout,
        dtype: DType,
        device: Device,
        op: Option<Op>,
    ) -> Tensor {
        LIVE.fetch_add(1, Ordering::Relaxed);
        let recorded = op.is_some();
        let op_name = op.as_ref().map(|o| o.name());
        Tensor(Arc::new(TensorImpl {
            id: TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            storage,
            layout,
            dtype,
            device,
            requires_grad: AtomicBool::new(recorded),
            is_leaf: !recorded,
            op: Mutex::new(op),
            op_name,
            grad: Mutex::new(None),
            retains_grad: AtomicBool::new(false),
        }))
    }

    /// A leaf tensor over a fresh storage with a contiguous layout.
    pub(crate) fn from_storage(storage: Storage, shape: Shape) -> Tensor {
        let (dtype, device) = (storage.dtype(), storage.device());
        Tensor::build(
            Arc::new(RwLock::new(storage)),
            Layout::contiguous(shape),
            dtype,
            device,
            None,
        )
    }

    /// The result of an op: records `op` when grad mode is on and some input requires grad.
    pub(crate) fn from_op(storage: Storage, shape: Shape, op: Op) -> Tensor {
        let (dtype, device) = (storage.dtype(), storage.device());
        let op = Self::maybe_record(op);
        Tensor::build(
            Arc::new(RwLock::new(storage)),
            Layout::contiguous(shape),
            dtype,
            device,
            op,
        )
    }

    fn maybe_record(op: Op) -> Option<Op> {
        if autograd::is_grad_enabled() && op.inputs().iter().any(|t| t.requires_grad()) {
            Some(op)
        } else {
            None
        }
    }

    /// A view of `self` with another layout over the same storage.
    pub(crate) fn view_with(&self, layout: Layout, kind: ViewKind) -> Tensor {
        let op = Self::maybe_record(Op::View(self.clone(), kind));
        Tensor::build(
            self.0.storage.clone(),
            layout,
            self.0.dtype,
            self.0.device,
            op,
        )
    }

    /// A tensor over CPU memory (owned or foreign) viewed through `layout`.
    pub fn from_cpu_storage(storage: CpuStorage, layout: Layout) -> Result<Tensor> {
        use crate::backend::BackendStorage;
        if layout.storage_extent() > storage.len() {
            return Err(Error::invalid(
                "from_cpu_storage",
                format!(
                    "layout of shape {} needs {} elements but the storage holds {}",
                    layout.shape(),
                    layout.storage_extent(),
                    storage.len()
                ),
            ));
        }
        let dtype = storage.dtype();
        Ok(Tensor::build(
            Arc::new(RwLock::new(Storage::Cpu(storage))),
            layout,
            dtype,
            Device::Cpu,
            None,
        ))
    }

    /// A leaf tensor holding `data` with the given shape.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1i64, 2, 3, 4], [2, 2], Device::Cpu)?;
    /// assert_eq!(t.dims(), &[2, 2]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_numel() != Some(data.len()) {
            return Err(Error::InvalidShape {
                op: "from_vec",
                shape,
                msg: format!(
                    "it needs a different number of elements than the {} given",
                    data.len()
                ),
            });
        }
        let t = Tensor::from_storage(Storage::Cpu(CpuStorage::from_vec(data)), shape);
        if device == Device::Cpu {
            Ok(t)
        } else {
            t.to_device(device)
        }
    }

    /// A 0-d tensor.
    pub fn scalar(value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        let s = Storage::full(&Shape::scalar(), value, dtype, device)?;
        Ok(Tensor::from_storage(s, Shape::scalar()))
    }

    // ---------------------------------------------------------------- metadata

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn device(&self) -> Device {
        self.0.device
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn strides(&self) -> &[usize] {
        self.0.layout.strides()
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    /// Size of dim `d` (negative counts from the end).
    pub fn size(&self, d: i64) -> Result<usize> {
        Ok(self.dims()[self.shape().dim("size", d)?])
    }

    /// Read access to the storage (kernels take this lock; many readers may hold it at once).
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }
    /// No other handle, view or tensor shares this tensor's memory.
    pub(crate) fn is_exclusive(&self) -> bool {
        Arc::strong_count(&self.0) == 1 && Arc::strong_count(&self.0.storage) == 1
    }
    /// Identity of the storage (for lock ordering and aliasing checks).
    pub(crate) fn storage_key(&self) -> usize {
        Arc::as_ptr(&self.0.storage) as usize
    }
    /// Whether two tensors view the same memory.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }
    /// Address of the first element of a CPU tensor (for zero-copy export); `None` on other devices.
    /// Valid while any handle to this tensor's storage lives.
    pub fn cpu_data_ptr(&self) -> Option<*const u8> {
        let s = self.storage();
        let cpu = s.as_cpu()?;
        // SAFETY: offset is within the storage (checked when the layout was made).
        Some(unsafe {
            cpu.as_ptr()
                .add(self.0.layout.offset() * self.0.dtype.size_in_bytes())
        })
    }

    // ---------------------------------------------------------------- autograd metadata

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Sets `requires_grad` on a leaf (PyTorch's `requires_grad_`). Returns `self` for chaining.
    pub fn requires_grad_(&self, flag: bool) -> Result<Tensor> {
        if !self.0.is_leaf {
            if flag {
                return Ok(self.clone());
            }
            return Err(Error::Autograd(
                "you can only change requires_grad flags of leaf tensors; use .detach() to get a tensor that does not require grad".into(),
            ));
        }
        if flag && !self.dtype().is_float() {
            return Err(Error::Autograd(format!(
                "only floating point tensors can require gradients, got dtype {}",
                self.dtype()
            )));
        }
        self.0.requires_grad.store(flag, Ordering::Relaxed);
        Ok(self.clone())
    }

    /// `true` for tensors created by the user rather than by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.is_leaf
    }

    /// The accumulated gradient (leaves, or tensors that called `retain_grad`).
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.0.grad).clone()
    }

    pub fn set_grad(&self, g: Option<Tensor>) -> Result<()> {
        if let Some(g) = &g {
            if g.shape() != self.shape() {
                return Err(Error::ShapeMismatch {
                    op: "grad",
                    lhs: self.shape().clone(),
                    rhs: g.shape().clone(),
                    detail: ": assigned grad has a different shape".into(),
                });
            }
            if g.device() != self.device() {
                return Err(Error::DeviceMismatch {
                    op: "grad",
                    lhs: self.device(),
                    rhs: g.device(),
                });
            }
        }
        *lock(&self.0.grad) = g;
        Ok(())
    }

    /// Keep `.grad` for this non-leaf tensor during backward.
    pub fn retain_grad(&self) {
        self.0.retains_grad.store(true, Ordering::Relaxed);
    }
    pub fn retains_grad(&self) -> bool {
        self.0.retains_grad.load(Ordering::Relaxed)
    }

    /// The op that made this tensor, if it is still recorded.
    pub fn op(&self) -> Option<Op> {
        lock(&self.0.op).clone()
    }
    pub(crate) fn take_op(&self) -> Option<Op> {
        lock(&self.0.op).take()
    }
    /// Name of the recording op (PyTorch's `grad_fn`), `None` for leaves.
    pub fn grad_fn_name(&self) -> Option<&'static str> {
        self.0.op_name
    }
    /// A new handle on the same storage and layout, cut off from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor::build(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            self.0.device,
            None,
        )
    }

    // ---------------------------------------------------------------- data out

    /// Elements in row-major order, as `T` (which must match the dtype). GPU tensors are read back.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                lhs: self.dtype(),
                rhs: T::DTYPE,
            });
        }
        let t = self.to_device(Device::Cpu)?.contiguous()?;
        let s = t.storage();
        let cpu = s
            .as_cpu()
            .ok_or_else(|| Error::invalid("to_vec", "tensor is not on the cpu"))?;
        let all = cpu.as_slice::<T>().ok_or(Error::DTypeMismatch {
            op: "to_vec",
            lhs: t.dtype(),
            rhs: T::DTYPE,
        })?;
        let off = t.layout().offset();
        Ok(all[off..off + t.numel()].to_vec())
    }

    /// Elements converted to f64, row-major.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        let t = self.to_device(Device::Cpu)?;
        let s = t.storage();
        let cpu = s
            .as_cpu()
            .ok_or_else(|| Error::invalid("to_vec", "tensor is not on the cpu"))?;
        cpu.to_f64_vec(t.layout())
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::InvalidShape {
                op: "item",
                shape: self.shape().clone(),
                msg: format!(
                    "a tensor with {} elements cannot be converted to a scalar",
                    self.numel()
                ),
            });
        }
        Ok(self.to_f64_vec()?[0])
    }

    /// A copy on `device` (or `self` if it is already there).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let s = self.storage().to_device(self.layout(), device)?;
        // Moving between devices is differentiable: the gradient moves back.
        Ok(Tensor::from_op(
            s,
            self.shape().clone(),
            Op::Copy(self.clone()),
        ))
    }

    // ---------------------------------------------------------------- in-place writes

    /// Copies `src` (broadcast to this shape, cast to this dtype) into this tensor's memory.
    /// Refused on tensors that require grad while grad mode is on, as in PyTorch.
    pub fn copy_(&self, src: &Tensor) -> Result<()> {
        self.check_inplace("copy_")?;
        let src = if src.dtype() != self.dtype() {
            src.detach().to_dtype(self.dtype())?
        } else {
            src.detach()
        };
        let src = if src.device() != self.device() {
            src.to_device(self.device())?
        } else {
            src
        };
        let src = src.broadcast_to(self.shape())?;
        // Reading and writing the same storage would deadlock the lock and could read
        // half-written data: materialise the source first.
        let src = if src.shares_storage(self) {
            src.contiguous_copy()?
        } else {
            src
        };
        // Locks in address order (see `with_read`), so two threads copying between the same
        // pair of tensors in opposite directions cannot deadlock.
        if Arc::as_ptr(&src.0.storage) < Arc::as_ptr(&self.0.storage) {
            let s = src.storage();
            self.storage_mut()
                .copy_into(self.layout(), &s, src.layout())
        } else {
            let mut d = self.storage_mut();
            d.copy_into(self.layout(), &src.storage(), src.layout())
        }
    }

    pub(crate) fn check_inplace(&self, op: &'static str) -> Result<()> {
        if autograd::is_grad_enabled() && self.requires_grad() {
            return Err(Error::Autograd(format!(
                "{op}: a tensor that requires grad is being used in an in-place operation; wrap the update in no_grad() or use the out-of-place op"
            )));
        }
        Ok(())
    }

    /// A contiguous copy that never aliases `self` (unlike `contiguous`, which may return `self`).
    pub fn contiguous_copy(&self) -> Result<Tensor> {
        let s = self.storage().copy_strided(self.layout())?;
        Ok(Tensor::from_op(
            s,
            self.shape().clone(),
            Op::Copy(self.clone()),
        ))
    }
}

impl Drop for TensorImpl {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // Free long graphs iteratively: recursive Arc drops of a 10^5-op chain would overflow the stack.
        let Some(op) = self.op.get_mut().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut stack = op.into_inputs();
        while let Some(t) = stack.pop() {
            if let Some(mut inner) = Arc::into_inner(t.0) {
                if let Some(op) = inner.op.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                    stack.extend(op.into_inputs());
                }
                drop(inner);
            }
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor[{}, {}, {}]",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

/// Runs `f` with read access to the storages of `ts`, taking each distinct lock once and in a
/// global (address) order. Taking the same lock twice, or two locks in opposite orders on two
/// threads, can deadlock once a writer queues; this rules both out.
pub(crate) fn with_read<R, const N: usize>(
    ts: [&Tensor; N],
    f: impl FnOnce([&Storage; N]) -> R,
) -> R {
    let key = |t: &Tensor| Arc::as_ptr(&t.0.storage) as usize;
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| key(ts[i]));
    let mut guards: Vec<(usize, RwLockReadGuard<'_, Storage>)> = Vec::with_capacity(N);
    let mut slot = [0usize; N];
    for &i in &order {
        let k = key(ts[i]);
        if guards.last().map(|g| g.0) != Some(k) {
            guards.push((k, ts[i].storage()));
        }
        slot[i] = guards.len() - 1;
    }
    let refs: [&Storage; N] = std::array::from_fn(|i| &*guards[slot[i]].1);
    f(refs)
}
