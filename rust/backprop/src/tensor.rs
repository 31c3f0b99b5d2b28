//! The tensor: a cheap handle (`Arc`) to storage + layout + autograd metadata.
//!
//! Cloning a `Tensor` clones the handle, not the data. Views share the storage `Arc` and differ
//! only in layout. A tensor made by an op while grad mode is on and some input requires grad
//! remembers that op (and through it its inputs): that chain is the computation graph.
//!
//! Invariant relied on by zero-copy export: a storage's memory never moves or is replaced while the
//! storage lives (in-place ops write into it; nothing reallocates it).

use crate::autograd;
use crate::autograd::hooks::{NodeHooks, TensorHooks};
use crate::cpu::CpuStorage;
use crate::op::{Op, ViewKind};
use crate::storage::Storage;
use crate::{DType, Device, Element, Error, Layout, Result, Shape};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Identity of a tensor (not of its storage): views get their own ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many tensor handles' targets are alive right now (views and graph intermediates included).
/// Tests use it to prove graphs are freed and training loops do not leak.
pub fn live_tensors() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The memory of a tensor and of every view of it, with the version counter they share.
///
/// Every write (an in-place op, an optimiser step, `copy_`) takes the write lock, and taking it
/// bumps `version`. An op that will read a tensor's values during backward records the version
/// it saw; backward compares, so a value overwritten in between is an error, never a silently
/// wrong gradient (PyTorch's version-counter rule).
pub(crate) struct StorageCell {
    data: RwLock<Storage>,
    version: AtomicU64,
    /// The storage's base in a virtual address space for memory without a host address (the
    /// GPU's), assigned on first use of `device_data_ptr`.
    vaddr: std::sync::OnceLock<usize>,
}

impl StorageCell {
    pub(crate) fn new(s: Storage) -> Arc<StorageCell> {
        Arc::new(StorageCell {
            data: RwLock::new(s),
            version: AtomicU64::new(0),
            vaddr: std::sync::OnceLock::new(),
        })
    }
}

/// Next free virtual address: ranges are handed out in storage order, never reused, so two
/// live storages never overlap (a 64-bit space does not run out).
static NEXT_VADDR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1 << 44);

/// A recorded op with the storage versions its backward relies on.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) op: Op,
    /// Versions of the first three inputs (in `op.inputs()` order) when the op was recorded;
    /// only ops with at most three inputs ever read an input's values in backward.
    pub(crate) versions: [u64; 3],
    /// Version of the output when the op was recorded (rules such as exp's read the output).
    pub(crate) out_version: u64,
    /// Where the op was called from, recorded in anomaly mode only (see `autograd::anomaly`).
    pub(crate) trace: Option<Arc<str>>,
    /// Hooks registered on this node (`grad_fn.register_hook`); allocated on first use and
    /// shared by the clones the engine takes.
    pub(crate) hooks: Option<Arc<NodeHooks>>,
}

/// How a node is named for users: primitives are spelled PyTorch's way on display
/// (`mul` -> `MulBackward0`); custom functions carry their display name already.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NodeName {
    Primitive(&'static str),
    Custom(&'static str),
}

impl NodeName {
    fn of(op: &Op) -> NodeName {
        match op {
            Op::Custom(..) => NodeName::Custom(op.name()),
            _ => NodeName::Primitive(op.name()),
        }
    }

    pub(crate) fn display(self) -> String {
        match self {
            NodeName::Primitive(n) => autograd::grad_fn_display(n),
            NodeName::Custom(n) => n.to_string(),
        }
    }
}

/// Autograd state that in-place ops rewrite (an in-place op gives its tensor a new history).
struct Meta {
    node: Option<Node>,
    /// Name of the recording op; kept after backward frees the op itself (PyTorch keeps grad_fn).
    name: Option<NodeName>,
    /// Gradient hooks (`register_hook`); `None` until the first registration. Shared with the
    /// tensor `with_data` makes, so a parameter keeps its hooks when moved to another device.
    hooks: Option<Arc<Mutex<TensorHooks>>>,
}

pub(crate) struct TensorImpl {
    id: TensorId,
    storage: Arc<StorageCell>,
    layout: Layout,
    dtype: DType,
    device: Device,
    requires_grad: AtomicBool,
    /// Made by the user (or by an op that recorded nothing), not by a recorded op. An in-place
    /// op that records turns a leaf into a non-leaf.
    is_leaf: AtomicBool,
    /// Made by a view op while recording: it shares memory with the tensor it views, whose
    /// history an in-place write through this view would have to rewrite too.
    is_view: bool,
    /// Made in inference mode (or a view of such a tensor): it may never be saved for backward
    /// nor written in place outside inference mode (PyTorch's inference tensors).
    inference: bool,
    /// The op that made this tensor; taken (freed) by backward unless the graph is retained.
    meta: Mutex<Meta>,
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
        storage: Arc<StorageCell>,
        layout: Layout,
        dtype: DType,
        device: Device,
        op: Option<Op>,
        is_view: bool,
        inference: bool,
    ) -> Tensor {
        LIVE.fetch_add(1, Ordering::Relaxed);
        let recorded = op.is_some();
        let name = op.as_ref().map(NodeName::of);
        let node = op.map(|op| {
            let mut versions = [0u64; 3];
            for (v, t) in versions.iter_mut().zip(op.inputs()) {
                *v = t.version();
            }
            Node {
                op,
                versions,
                out_version: storage.version.load(Ordering::Relaxed),
                trace: autograd::anomaly::trace(),
                hooks: None,
            }
        });
        Tensor(Arc::new(TensorImpl {
            id: TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            storage,
            layout,
            dtype,
            device,
            requires_grad: AtomicBool::new(recorded),
            is_leaf: AtomicBool::new(!recorded),
            is_view: is_view && recorded,
            inference,
            meta: Mutex::new(Meta {
                node,
                name,
                hooks: None,
            }),
            grad: Mutex::new(None),
            retains_grad: AtomicBool::new(false),
        }))
    }

    /// A leaf tensor over a fresh storage with a contiguous layout.
    pub(crate) fn from_storage(storage: Storage, shape: Shape) -> Tensor {
        let (dtype, device) = (storage.dtype(), storage.device());
        Tensor::build(
            StorageCell::new(storage),
            Layout::contiguous(shape),
            dtype,
            device,
            None,
            false,
            autograd::is_inference_mode_enabled(),
        )
    }

    /// The result of an op: records `op` when grad mode is on and some input requires grad.
    pub(crate) fn from_op(storage: Storage, shape: Shape, op: Op) -> Result<Tensor> {
        shape.check_extents(op.name())?;
        let (dtype, device) = (storage.dtype(), storage.device());
        let op = Self::maybe_record(op)?;
        Ok(Tensor::build(
            StorageCell::new(storage),
            Layout::contiguous(shape),
            dtype,
            device,
            op,
            false,
            autograd::is_inference_mode_enabled(),
        ))
    }

    fn maybe_record(op: Op) -> Result<Option<Op>> {
        if !(autograd::is_grad_enabled() && op.inputs().iter().any(|t| t.requires_grad())) {
            return Ok(None);
        }
        if op.inputs().iter().any(|t| t.is_inference()) {
            let saved = autograd::saved_inputs(&op);
            let inputs = op.inputs();
            if (0..inputs.len().min(3)).any(|i| saved & (1 << i) != 0 && inputs[i].is_inference()) {
                return Err(Error::Autograd(format!(
                    "{}: inference tensors cannot be saved for backward (this op reads an input made in inference_mode when it is differentiated); make a clone() of it outside inference_mode to get a normal tensor and use that",
                    op.name()
                )));
            }
        }
        Ok(Some(op))
    }

    /// A view of `self` with another layout over the same storage.
    pub(crate) fn view_with(&self, layout: Layout, kind: ViewKind) -> Tensor {
        // views never save their input's values, so recording cannot refuse an inference tensor
        let op = Self::maybe_record(Op::View(self.clone(), kind)).unwrap_or(None);
        Tensor::build(
            self.0.storage.clone(),
            layout,
            self.0.dtype,
            self.0.device,
            op,
            true,
            self.is_inference() || autograd::is_inference_mode_enabled(),
        )
    }

    /// A tensor over `self`'s memory and layout whose history is `op` (a custom function's
    /// output, recorded after its forward ran); `is_view` when it aliases one of the inputs.
    pub(crate) fn with_recorded(&self, op: Op, is_view: bool) -> Tensor {
        let t = Tensor::build(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            self.0.device,
            Some(op),
            is_view,
            self.is_inference() || autograd::is_inference_mode_enabled(),
        );
        t.0.retains_grad
            .store(self.retains_grad(), Ordering::Relaxed);
        t
    }

    /// A leaf over `data`'s memory that keeps this leaf's autograd state (`requires_grad`, and
    /// `.grad` where it still fits): what PyTorch's `t.data = data` does, used to move a
    /// parameter to another device or dtype while the Python object holding it stays the same.
    pub fn with_data(&self, data: &Tensor) -> Result<Tensor> {
        if !self.is_leaf() {
            return Err(Error::Autograd(
                "setting .data is only supported on leaf tensors (this one was made by an op; use .detach() to get a leaf)".into(),
            ));
        }
        if self.requires_grad() && !data.dtype().is_float() {
            return Err(Error::DType {
                op: "data",
                dtype: data.dtype(),
                detail: ": a tensor that requires grad can only hold floating-point data".into(),
            });
        }
        let t = Tensor::build(
            data.0.storage.clone(),
            data.0.layout.clone(),
            data.0.dtype,
            data.0.device,
            None,
            false,
            data.is_inference(),
        );
        t.0.requires_grad
            .store(self.requires_grad(), Ordering::Relaxed);
        t.0.retains_grad
            .store(self.retains_grad(), Ordering::Relaxed);
        lock(&t.0.meta).hooks = lock(&self.0.meta).hooks.clone();
        if let Some(g) = self.grad() {
            if g.shape() == t.shape() && g.dtype() == t.dtype() && g.device() == t.device() {
                *lock(&t.0.grad) = Some(g);
            }
        }
        Ok(t)
    }

    /// A tensor over `self`'s memory and layout carrying the history of `result` (an op
    /// applied to `self` whose values were just written into `self`'s memory): what an in-place
    /// op returns. `result`'s node moves to the new tensor.
    pub(crate) fn with_history_of(&self, result: &Tensor) -> Tensor {
        let node = lock(&result.0.meta).node.take().map(|mut n| {
            // the output's values are the ones just written: that write is the version they have
            n.out_version = self.version();
            n
        });
        let name = node.as_ref().map(|n| NodeName::of(&n.op));
        LIVE.fetch_add(1, Ordering::Relaxed);
        Tensor(Arc::new(TensorImpl {
            id: TensorId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            dtype: self.0.dtype,
            device: self.0.device,
            requires_grad: AtomicBool::new(true),
            is_leaf: AtomicBool::new(false),
            is_view: false,
            inference: self.is_inference(),
            meta: Mutex::new(Meta {
                node,
                name,
                hooks: None,
            }),
            grad: Mutex::new(None),
            retains_grad: AtomicBool::new(self.retains_grad()),
        }))
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
            StorageCell::new(Storage::Cpu(storage)),
            layout,
            dtype,
            Device::Cpu,
            None,
            false,
            autograd::is_inference_mode_enabled(),
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
        shape.check_extents("from_vec")?;
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
        let s = Storage::full(&Shape::scalar(), crate::Scalar::Float(value), dtype, device)?;
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
        if self.rank() == 0 {
            return Err(Error::DimOutOfRange {
                op: "size",
                dim: d,
                rank: 0,
            });
        }
        Ok(self.dims()[self.shape().dim("size", d)?])
    }

    /// Read access to the storage (kernels take this lock; many readers may hold it at once).
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0
            .storage
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }
    /// Write access to the storage; bumps the version counter (every writer goes through here).
    pub(crate) fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        let g = self
            .0
            .storage
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.0.storage.version.fetch_add(1, Ordering::Relaxed);
        g
    }
    /// How many times this tensor's memory (shared with its views) has been written in place
    /// (PyTorch's `_version`).
    pub fn version(&self) -> u64 {
        self.0.storage.version.load(Ordering::Relaxed)
    }
    /// Made by a view op while recording (shares memory with the tensor it views).
    pub fn is_view(&self) -> bool {
        self.0.is_view
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
    /// A stand-in for the address of the first element where the memory has no host address
    /// (GPU tensors): a non-zero base unique to this storage (its range never overlaps another
    /// live storage's) plus the offset in bytes. CPU tensors get their real address.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0], [2], Device::Cpu)?;
    /// assert_eq!(t.device_data_ptr(), t.cpu_data_ptr().unwrap() as usize);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn device_data_ptr(&self) -> usize {
        if let Some(p) = self.cpu_data_ptr() {
            return p as usize;
        }
        let esize = self.0.dtype.size_in_bytes();
        let base = *self.0.storage.vaddr.get_or_init(|| {
            let bytes = self.storage().len().saturating_mul(esize);
            // 256-byte aligned like a CUDA allocation, with a gap so ends never touch
            let span = (bytes.saturating_add(256 + 255)) & !255;
            NEXT_VADDR.fetch_add(span, Ordering::Relaxed)
        });
        base + self.0.layout.offset() * esize
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
        if !self.is_leaf() {
            if flag {
                return Ok(self.clone());
            }
            return Err(Error::Autograd(
                "you can only change requires_grad flags of leaf tensors; use .detach() to get a tensor that does not require grad".into(),
            ));
        }
        if flag && self.is_inference() && !autograd::is_inference_mode_enabled() {
            return Err(Error::Autograd(
                "setting requires_grad=True on an inference tensor outside inference_mode is not allowed; clone() it first".into(),
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
        self.0.is_leaf.load(Ordering::Relaxed)
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
        lock(&self.0.meta).node.as_ref().map(|n| n.op.clone())
    }
    pub(crate) fn node(&self) -> Option<Node> {
        lock(&self.0.meta).node.clone()
    }
    /// Runs `f` on this tensor's recorded node, if any.
    pub(crate) fn with_node_mut<R>(
        &self,
        f: impl FnOnce(&mut Node) -> Result<R>,
    ) -> Result<Option<R>> {
        let mut meta = lock(&self.0.meta);
        match meta.node.as_mut() {
            Some(n) => f(n).map(Some),
            None => Ok(None),
        }
    }
    /// A recorded view of the same memory: a distinct graph node even when the shape is
    /// unchanged (`copy_` records its source through one).
    pub(crate) fn alias(&self) -> Tensor {
        self.view_with(self.layout().clone(), ViewKind::Reshape)
    }
    pub(crate) fn take_op(&self) -> Option<Op> {
        lock(&self.0.meta).node.take().map(|n| n.op)
    }
    /// Name of the recording op (`"mul"`; a custom function's display name), `None` for leaves.
    pub fn grad_fn_name(&self) -> Option<&'static str> {
        lock(&self.0.meta).name.map(|n| match n {
            NodeName::Primitive(s) | NodeName::Custom(s) => s,
        })
    }
    /// The node's name as PyTorch prints it (`"MulBackward0"`), `None` for leaves.
    pub fn grad_fn_display_name(&self) -> Option<String> {
        lock(&self.0.meta).name.map(NodeName::display)
    }
    /// A new handle on the same storage and layout, cut off from the graph. It shares the
    /// version counter, so writes through either are seen by the other's saved-value checks.
    pub fn detach(&self) -> Tensor {
        Tensor::build(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            self.0.device,
            None,
            false,
            self.is_inference(),
        )
    }

    /// Made in inference mode (PyTorch's `Tensor.is_inference()`).
    pub fn is_inference(&self) -> bool {
        self.0.inference
    }

    /// This tensor's hook lists, created on first use.
    pub(crate) fn hook_lists(&self) -> Arc<Mutex<TensorHooks>> {
        lock(&self.0.meta)
            .hooks
            .get_or_insert_with(Default::default)
            .clone()
    }

    /// `Some(f(hooks))` when this tensor has hooks.
    pub(crate) fn hooks_snapshot<R>(&self, f: impl FnOnce(&TensorHooks) -> R) -> Option<R> {
        let h = lock(&self.0.meta).hooks.clone()?;
        let g = lock(&h);
        Some(f(&g))
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
        if t.numel() == 0 {
            // an empty view may keep an offset past its (empty) storage
            return Ok(Vec::new());
        }
        let off = t.layout().offset();
        all.get(off..off + t.numel())
            .map(|s| s.to_vec())
            .ok_or_else(|| {
                Error::invalid("to_vec", "the layout addresses memory outside the storage")
            })
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

    /// The value of a one-element tensor in its own kind: an int64 keeps all 64 bits (`item`
    /// goes through f64, which holds integers exactly only up to 2^53).
    pub fn item_scalar(&self) -> Result<crate::Scalar> {
        use crate::Scalar;
        match self.dtype() {
            d if d.is_int() => {
                self.item()?; // the element-count check
                let v = self.reshape([1])?.to_dtype(DType::I64)?.to_vec::<i64>()?;
                Ok(Scalar::Int(v[0]))
            }
            DType::Bool => Ok(Scalar::Bool(self.item()? != 0.0)),
            _ => Ok(Scalar::Float(self.item()?)),
        }
    }

    /// A copy on `device` (or `self` if it is already there).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let s = self.storage().to_device(self.layout(), device)?;
        // Moving between devices is differentiable: the gradient moves back.
        Tensor::from_op(s, self.shape().clone(), Op::Copy(self.clone()))
    }

    /// A contiguous copy that never aliases `self` (unlike `contiguous`, which may return `self`).
    pub fn contiguous_copy(&self) -> Result<Tensor> {
        let s = self.storage().copy_strided(self.layout())?;
        Tensor::from_op(s, self.shape().clone(), Op::Copy(self.clone()))
    }
}

impl Drop for TensorImpl {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // Free long graphs iteratively: recursive Arc drops of a 10^5-op chain would overflow the stack.
        let take = |m: &mut Mutex<Meta>| m.get_mut().unwrap_or_else(|e| e.into_inner()).node.take();
        let Some(node) = take(&mut self.meta) else {
            return;
        };
        let mut stack = node.op.into_inputs();
        while let Some(t) = stack.pop() {
            if let Some(mut inner) = Arc::into_inner(t.0) {
                if let Some(node) = take(&mut inner.meta) {
                    stack.extend(node.op.into_inputs());
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
    let key = |t: &Tensor| t.storage_key();
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
