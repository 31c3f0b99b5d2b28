//! Autocast: PyTorch's automatic mixed precision, as a per-op casting policy.
//!
//! Inside an autocast region (`torch.autocast("cpu", dtype=torch.bfloat16)`) the ops that are
//! safe and fast in a lower precision (matmul, linear, convolutions, attention, the LSTM layer)
//! cast their floating-point inputs to the region's dtype, and the ops that need the range or
//! precision of float32 (the losses, `grid_sample`, `prod`, `cdist`, `trace`, solvers...) cast
//! theirs to float32; every other op runs in the dtypes it is given, with the ordinary promotion.
//! The lists are PyTorch's CPU lists (`aten/src/ATen/autocast_mode.cpp`, `AutocastCPU`); ops this
//! engine does not have are simply absent. As in PyTorch:
//!
//! - only floating tensors on the region's device are cast, and never float64 ones;
//! - a listed op runs its body with autocast off, so the ops it is made of are not cast again
//!   (PyTorch's `ExcludeDispatchKeyGuard`);
//! - the casts are ordinary differentiable casts, so gradients flow back to float32 parameters in
//!   float32; the backward pass itself never autocasts (it runs in the forward's dtypes);
//! - the lower-precision copies of float32 leaf parameters are cached for the region (so a weight
//!   used by several ops is cast once) and dropped when the outermost region ends.
//!
//! Unlike PyTorch, a cached copy is also dropped when its parameter is changed in place
//! (an optimiser step inside the region), where PyTorch would go on using the stale copy, and
//! nothing is cached under `no_grad` (a copy cached there would carry no gradient to a later use).
//!
//! Only the CPU autocasts: the GPU backend has no float16 kernels yet, so enabling it there is
//! refused with an error that says so.
//!
//! ```
//! use backprop::{autocast, DType, Device, Tensor};
//!
//! let x = Tensor::randn([4, 8], DType::F32, Device::Cpu)?;
//! let w = Tensor::randn([8, 3], DType::F32, Device::Cpu)?.requires_grad_(true)?;
//! let y = {
//!     let _region = autocast::region(Device::Cpu, DType::BF16)?;
//!     x.matmul(&w)?
//! };
//! assert_eq!(y.dtype(), DType::BF16);
//! y.to_dtype(DType::F32)?.sum_all()?.backward()?;
//! assert_eq!(w.grad().unwrap().dtype(), DType::F32); // the parameter's own dtype
//! # Ok::<(), backprop::Error>(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::{DType, Device, Error, Result, Tensor, TensorId};

/// Which way a listed op casts its floating-point inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// To the region's lower-precision dtype (bfloat16 or float16).
    Lower,
    /// To float32.
    Float32,
}

impl Policy {
    /// Parses `"lower"` / `"fp32"` (the binding's names).
    pub fn parse(s: &str) -> Result<Policy> {
        match s {
            "lower" => Ok(Policy::Lower),
            "fp32" => Ok(Policy::Float32),
            other => Err(Error::invalid(
                "autocast",
                format!("unknown cast policy '{other}' (expected 'lower' or 'fp32')"),
            )),
        }
    }
}

struct Cached {
    // Held, never read: while the entry lives the source (and so its id) stays alive.
    #[allow(dead_code)]
    source: Tensor,
    version: u64,
    cast: Tensor,
}

thread_local! {
    // Per thread, as in PyTorch.
    static CPU_ENABLED: Cell<bool> = const { Cell::new(false) };
    static CPU_DTYPE: Cell<DType> = const { Cell::new(DType::BF16) };
    static CACHE_ENABLED: Cell<bool> = const { Cell::new(true) };
    // > 0 inside a listed op's body and during backward: nothing is cast there.
    static SUSPENDED: Cell<u32> = const { Cell::new(0) };
    static NESTING: Cell<i64> = const { Cell::new(0) };
    static CACHE: RefCell<HashMap<TensorId, Cached>> = RefCell::new(HashMap::new());
}

fn gpu_refused(op: &'static str) -> Error {
    Error::Unsupported {
        op,
        device: Device::Gpu,
        msg:
            "autocast needs float16 kernels on the GPU (WGSL shader-f16), which are not built yet; \
              autocast on the CPU works"
                .into(),
    }
}

fn check_dtype(dtype: DType) -> Result<()> {
    if matches!(dtype, DType::BF16 | DType::F16) {
        Ok(())
    } else {
        Err(Error::DType {
            op: "autocast",
            dtype,
            detail:
                ": CPU autocast supports only bfloat16 and float16 as the lower-precision dtype"
                    .into(),
        })
    }
}

/// Whether autocast is enabled for `device` on this thread (`torch.is_autocast_enabled`).
pub fn is_enabled(device: Device) -> bool {
    device == Device::Cpu && CPU_ENABLED.with(Cell::get)
}

/// Turns autocast on or off for `device` on this thread; returns the previous setting. Enabling
/// it for the GPU is refused (no float16 GPU kernels yet).
pub fn set_enabled(device: Device, enabled: bool) -> Result<bool> {
    match device {
        Device::Cpu => Ok(CPU_ENABLED.with(|c| c.replace(enabled))),
        Device::Gpu if enabled => Err(gpu_refused("set_autocast_enabled")),
        Device::Gpu => Ok(false),
    }
}

/// The lower-precision dtype of `device`'s regions (`torch.get_autocast_dtype`): bfloat16 on the
/// CPU unless set, float16 on the GPU (PyTorch's CUDA default).
pub fn dtype(device: Device) -> DType {
    match device {
        Device::Cpu => CPU_DTYPE.with(Cell::get),
        Device::Gpu => DType::F16,
    }
}

/// Sets the lower-precision dtype for `device` (bfloat16 or float16); returns the previous one.
pub fn set_dtype(device: Device, dtype: DType) -> Result<DType> {
    check_dtype(dtype)?;
    match device {
        Device::Cpu => Ok(CPU_DTYPE.with(|c| c.replace(dtype))),
        Device::Gpu => Err(gpu_refused("set_autocast_dtype")),
    }
}

/// Whether casts of float32 parameters are cached inside a region.
pub fn is_cache_enabled() -> bool {
    CACHE_ENABLED.with(Cell::get)
}

/// Turns the parameter-cast cache on or off; returns the previous setting.
pub fn set_cache_enabled(enabled: bool) -> bool {
    CACHE_ENABLED.with(|c| c.replace(enabled))
}

/// Drops every cached cast (`torch.clear_autocast_cache`).
pub fn clear_cache() {
    CACHE.with(|c| c.borrow_mut().clear());
}

/// Enters one more region level; returns the new depth.
pub fn increment_nesting() -> i64 {
    NESTING.with(|n| {
        n.set(n.get() + 1);
        n.get()
    })
}

/// Leaves one region level; returns the new depth (the caller clears the cache at 0).
pub fn decrement_nesting() -> i64 {
    NESTING.with(|n| {
        n.set(n.get() - 1);
        n.get()
    })
}

/// The settings an autocast region replaced, to put back when it ends ([`exit`]).
#[derive(Debug, Clone, Copy)]
pub struct RegionState {
    device: Device,
    enabled: bool,
    dtype: DType,
    cache_enabled: bool,
    suspended: u32,
}

/// Starts an autocast region on this thread, as PyTorch's `autocast.__enter__`: sets whether
/// `device` autocasts, its lower-precision dtype and the cache setting, and counts one more
/// nesting level. A region also lifts a suspension (an explicit region inside a custom
/// function's backward autocasts there). Enabling the GPU is refused.
pub fn enter(
    device: Device,
    enabled: bool,
    dtype: DType,
    cache_enabled: bool,
) -> Result<RegionState> {
    check_dtype(dtype)?;
    if device == Device::Gpu && enabled {
        return Err(gpu_refused("autocast"));
    }
    let state = RegionState {
        device,
        enabled: is_enabled(device),
        dtype: self::dtype(device),
        cache_enabled: set_cache_enabled(cache_enabled),
        suspended: SUSPENDED.with(|s| s.replace(0)),
    };
    if device == Device::Cpu {
        CPU_ENABLED.with(|c| c.set(enabled));
        CPU_DTYPE.with(|c| c.set(dtype));
    }
    increment_nesting();
    Ok(state)
}

/// Ends a region started by [`enter`] (PyTorch's `autocast.__exit__`): the cache is cleared when
/// the outermost region ends, and the replaced settings come back.
pub fn exit(state: RegionState) {
    if decrement_nesting() == 0 {
        clear_cache();
    }
    if state.device == Device::Cpu {
        CPU_ENABLED.with(|c| c.set(state.enabled));
        CPU_DTYPE.with(|c| c.set(state.dtype));
    }
    set_cache_enabled(state.cache_enabled);
    SUSPENDED.with(|s| s.set(state.suspended));
}

/// Ends its region ([`exit`]) when dropped.
#[must_use = "autocast is turned off again when the guard is dropped"]
pub struct RegionGuard(RegionState);

impl Drop for RegionGuard {
    fn drop(&mut self) {
        exit(self.0);
    }
}

/// An autocast region on `device` with lower-precision `dtype` until the guard is dropped
/// (PyTorch's `with torch.autocast(device_type, dtype):`).
pub fn region(device: Device, dtype: DType) -> Result<RegionGuard> {
    Ok(RegionGuard(enter(device, true, dtype, is_cache_enabled())?))
}

/// Keeps autocast suspended (no casts) until dropped.
#[must_use = "autocast resumes when the guard is dropped"]
pub struct Suspended(());

impl Drop for Suspended {
    fn drop(&mut self) {
        SUSPENDED.with(|s| s.set(s.get().saturating_sub(1)));
    }
}

/// Suspends autocast on this thread until the guard is dropped (a listed op's body, the
/// backward pass).
pub fn suspend() -> Suspended {
    SUSPENDED.with(|s| s.set(s.get() + 1));
    Suspended(())
}

/// Whether an op called now on `device` would be autocast.
pub fn is_active(device: Device) -> bool {
    is_enabled(device) && SUSPENDED.with(Cell::get) == 0
}

/// A listed op's casting, handed out by [`begin`]: cast the op's tensors with it, then call the
/// op again; autocast stays suspended until this is dropped, so that call runs the op's body.
pub struct Active {
    target: DType,
    device: Device,
    lower: bool,
    _suspended: Suspended,
}

impl Active {
    /// `t` cast to the policy's dtype when it is eligible (floating, not float64, on the
    /// region's device); `t` itself otherwise.
    pub fn cast(&self, t: &Tensor) -> Result<Tensor> {
        let dt = t.dtype();
        if !dt.is_float() || dt == DType::F64 || dt == self.target || t.device() != self.device {
            return Ok(t.clone());
        }
        // PyTorch's heuristic (Apex's): cache the lower-precision copies of float32 leaf weights.
        let cacheable = self.lower
            && dt == DType::F32
            && t.requires_grad()
            && t.is_leaf()
            && !t.is_view()
            && is_cache_enabled()
            && crate::is_grad_enabled();
        if !cacheable {
            return t.to_dtype(self.target);
        }
        let hit = CACHE.with(|c| {
            c.borrow()
                .get(&t.id())
                .filter(|e| e.version == t.version() && e.cast.dtype() == self.target)
                .map(|e| e.cast.clone())
        });
        if let Some(cast) = hit {
            return Ok(cast);
        }
        let cast = t.to_dtype(self.target)?;
        CACHE.with(|c| {
            c.borrow_mut().insert(
                t.id(),
                Cached {
                    source: t.clone(),
                    version: t.version(),
                    cast: cast.clone(),
                },
            )
        });
        Ok(cast)
    }

    /// [`Active::cast`] of an optional tensor (a bias).
    pub fn cast_opt(&self, t: Option<&Tensor>) -> Result<Option<Tensor>> {
        t.map(|t| self.cast(t)).transpose()
    }

    /// The dtype this op casts to.
    pub fn target(&self) -> DType {
        self.target
    }
}

/// Starts a listed op's casting when autocast is active for `device`; `None` (run the op as it
/// is) otherwise. The shape every listed op has, here for an op of one's own:
///
/// ```
/// use backprop::autocast::{self, Policy};
/// use backprop::{DType, Device, Tensor};
///
/// fn my_product(a: &Tensor, b: &Tensor) -> backprop::Result<Tensor> {
///     if let Some(ac) = autocast::begin(Policy::Lower, a.device()) {
///         return my_product(&ac.cast(a)?, &ac.cast(b)?); // runs the body: autocast is suspended
///     }
///     a.mul(b)
/// }
/// let a = Tensor::ones([2], DType::F32, Device::Cpu)?;
/// let _region = autocast::region(Device::Cpu, DType::F16)?;
/// assert_eq!(my_product(&a, &a)?.dtype(), DType::F16);
/// assert_eq!(a.mul(&a)?.dtype(), DType::F32); // mul is not listed
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn begin(policy: Policy, device: Device) -> Option<Active> {
    if !is_active(device) {
        return None;
    }
    let target = match policy {
        Policy::Lower => dtype(device),
        Policy::Float32 => DType::F32,
    };
    Some(Active {
        target,
        device,
        lower: policy == Policy::Lower,
        _suspended: suspend(),
    })
}

/// Number of cached parameter casts (for tests of the cache).
pub fn cached_casts() -> usize {
    CACHE.with(|c| c.borrow().len())
}
