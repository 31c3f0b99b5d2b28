//! Elementwise kernels over strided inputs: unary maps, binary ops, comparisons, where, casts and
//! strided copies.
//!
//! Every kernel goes through `map_runs`: the operands' layouts are coalesced into an outer walk
//! and an inner run, and the inner loop is specialised on the inner strides (contiguous, or
//! broadcast with stride 0) so that the common cases (same-shape contiguous, scalar, row or
//! column broadcast) are straight loops the compiler vectorises.

use super::buffer::alloc_for_overwrite;
use super::math;
use super::parallel::{for_each_chunk, go_parallel, CHUNK};
use super::simd::dispatch;
use super::vmath;
use crate::layout::StridedPlan;
use crate::op::{BinaryOp, CmpOp, UnaryOp};
use crate::FloatElement;
use crate::{Element, Layout, Result};

/// Computes a contiguous output of `layouts[0].numel()` elements, one inner run at a time.
/// `run(offsets, inner_strides, out_run)` fills `out_run` (its length is the run length).
pub fn map_runs<const N: usize, U: Element>(
    op: &'static str,
    layouts: [&Layout; N],
    run: impl Fn([usize; N], [usize; N], &mut [U]) + Sync + Send,
) -> Result<Vec<U>> {
    let shape = layouts[0].shape();
    let mut out = alloc_for_overwrite::<U>(op, shape)?;
    let n = out.len();
    if n == 0 {
        return Ok(out);
    }
    let plan = StridedPlan::new(layouts);
    let inner = plan.inner_len;
    let runs = plan.outer_count();
    let strides = plan.inner_strides;
    // (the inner loops in map1/map2 run inside `simd::dispatch`: dispatching here, around the
    // walk, would leave them in non-inlined code compiled for the baseline instruction set)
    if !go_parallel(n) {
        plan.for_each_run(0, runs, |offs, r| {
            run(offs, strides, &mut out[r * inner..(r + 1) * inner])
        });
    } else if runs == 1 {
        // one long run: split it into fixed-size pieces
        for_each_chunk(&mut out, CHUNK, |c, piece| {
            let start = c * CHUNK;
            let offs = std::array::from_fn(|k| plan.offsets[k] + start * strides[k]);
            run(offs, strides, piece);
        });
    } else {
        let runs_per_task = (CHUNK / inner).max(1);
        for_each_chunk(&mut out, runs_per_task * inner, |c, piece| {
            let first = c * runs_per_task;
            let last = (first + piece.len() / inner).min(runs);
            plan.for_each_run(first, last, |offs, r| {
                let local = r - first;
                run(
                    offs,
                    strides,
                    &mut piece[local * inner..(local + 1) * inner],
                );
            });
        });
    }
    Ok(out)
}

// The contiguous inner loops, `inline(always)` so that they (and the element function) end up
// inside the target-feature function of `simd::dispatch` and are vectorised for it; a closure
// body alone is not reliably inlined there once the element function is large (tanh, gelu).
#[inline(always)]
fn loop1<T: Copy, U>(out: &mut [U], x: &[T], f: &impl Fn(T) -> U) {
    for (y, &v) in out.iter_mut().zip(x) {
        *y = f(v);
    }
}

#[inline(always)]
fn loop2<T: Copy, U>(out: &mut [U], a: &[T], b: &[T], f: &impl Fn(T, T) -> U) {
    for ((y, &u), &v) in out.iter_mut().zip(a).zip(b) {
        *y = f(u, v);
    }
}

#[inline(always)]
fn loop2_rhs_scalar<T: Copy, U>(out: &mut [U], a: &[T], v: T, f: &impl Fn(T, T) -> U) {
    for (y, &u) in out.iter_mut().zip(a) {
        *y = f(u, v);
    }
}

#[inline(always)]
fn loop2_lhs_scalar<T: Copy, U>(out: &mut [U], u: T, b: &[T], f: &impl Fn(T, T) -> U) {
    for (y, &v) in out.iter_mut().zip(b) {
        *y = f(u, v);
    }
}

/// `out[i] = f(x[i])` over a strided view.
#[inline(always)]
pub fn map1<T: Element, U: Element>(
    op: &'static str,
    x: &[T],
    l: &Layout,
    f: impl Fn(T) -> U + Sync + Send,
) -> Result<Vec<U>> {
    map_runs(op, [l], |[o], [s], out: &mut [U]| {
        let n = out.len();
        if s == 1 {
            let src = &x[o..o + n];
            dispatch(
                #[inline(always)]
                || loop1(out, src, &f),
            );
        } else {
            for (j, y) in out.iter_mut().enumerate() {
                *y = f(x[o + j * s]);
            }
        }
    })
}

/// `out[i] = f(a[i], b[i])` over two same-shape strided views.
#[inline(always)]
pub fn map2<T: Element, U: Element>(
    op: &'static str,
    a: &[T],
    al: &Layout,
    b: &[T],
    bl: &Layout,
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Result<Vec<U>> {
    map_runs(op, [al, bl], |[oa, ob], [sa, sb], out: &mut [U]| {
        let n = out.len();
        match (sa, sb) {
            (1, 1) => {
                let (sa, sb) = (&a[oa..oa + n], &b[ob..ob + n]);
                dispatch(
                    #[inline(always)]
                    || loop2(out, sa, sb, &f),
                );
            }
            (1, 0) => {
                let (sa, v) = (&a[oa..oa + n], b[ob]);
                dispatch(
                    #[inline(always)]
                    || loop2_rhs_scalar(out, sa, v, &f),
                );
            }
            (0, 1) => {
                let (u, sb) = (a[oa], &b[ob..ob + n]);
                dispatch(
                    #[inline(always)]
                    || loop2_lhs_scalar(out, u, sb, &f),
                );
            }
            _ => {
                for (j, y) in out.iter_mut().enumerate() {
                    *y = f(a[oa + j * sa], b[ob + j * sb]);
                }
            }
        }
    })
}

/// `out[i] = if c[i] { t[i] } else { f[i] }`.
pub fn select<T: Element>(
    c: &[u8],
    cl: &Layout,
    t: &[T],
    tl: &Layout,
    f: &[T],
    fl: &Layout,
) -> Result<Vec<T>> {
    map_runs(
        "where",
        [cl, tl, fl],
        |[oc, ot, of], [sc, st, sf], out: &mut [T]| {
            let n = out.len();
            // the patterns of gradient rules (ReLU, clamp, max: `where(mask, g, 0)`) as slice
            // loops the vectoriser turns into blends
            match (sc, st, sf) {
                (1, 1, 1) => {
                    let (c, t, f) = (&c[oc..oc + n], &t[ot..ot + n], &f[of..of + n]);
                    dispatch(
                        #[inline(always)]
                        || {
                            for (((y, &c), &t), &f) in out.iter_mut().zip(c).zip(t).zip(f) {
                                *y = if c != 0 { t } else { f };
                            }
                        },
                    );
                }
                (1, 1, 0) => {
                    let (c, t, f) = (&c[oc..oc + n], &t[ot..ot + n], f[of]);
                    dispatch(
                        #[inline(always)]
                        || {
                            for ((y, &c), &t) in out.iter_mut().zip(c).zip(t) {
                                *y = if c != 0 { t } else { f };
                            }
                        },
                    );
                }
                (1, 0, 1) => {
                    let (c, t, f) = (&c[oc..oc + n], t[ot], &f[of..of + n]);
                    dispatch(
                        #[inline(always)]
                        || {
                            for ((y, &c), &f) in out.iter_mut().zip(c).zip(f) {
                                *y = if c != 0 { t } else { f };
                            }
                        },
                    );
                }
                _ => {
                    for (j, y) in out.iter_mut().enumerate() {
                        *y = if c[oc + j * sc] != 0 {
                            t[ot + j * st]
                        } else {
                            f[of + j * sf]
                        };
                    }
                }
            }
        },
    )
}

/// Writes `src` viewed by `sl` into `dst` at the positions of `dl` (same shape). Sequential: it
/// serves cat, slice assignment and scatter bases, which are bandwidth-bound copies.
pub fn copy_into<T: Element>(dst: &mut [T], dl: &Layout, src: &[T], sl: &Layout) {
    let n = dl.numel();
    if n == 0 {
        return;
    }
    if go_parallel(n) && dl.is_contiguous() && sl.is_contiguous() {
        // one long run (the write-back of an in-place op, a large cat part): one core's copy
        // bandwidth is half the machine's, and the helper is awake anyway
        let (d0, s0) = (dl.offset(), sl.offset());
        let src = &src[s0..s0 + n];
        for_each_chunk(&mut dst[d0..d0 + n], CHUNK, |c, piece| {
            piece.copy_from_slice(&src[c * CHUNK..c * CHUNK + piece.len()]);
        });
        return;
    }
    let plan = StridedPlan::new([dl, sl]);
    let [sd, ss] = plan.inner_strides;
    let n = plan.inner_len;
    plan.for_each_run(0, plan.outer_count(), |[od, os], _| {
        if sd == 1 && ss == 1 {
            dst[od..od + n].copy_from_slice(&src[os..os + n]);
        } else {
            for j in 0..n {
                dst[od + j * sd] = src[os + j * ss];
            }
        }
    });
}

// ---------------------------------------------------------------------- per-op kernels
//
// The op is matched once, outside the loop: each arm instantiates `map1`/`map2` with a closure
// for exactly one function, which the compiler inlines and vectorises. (Matching inside the loop
// would keep every element on the scalar path.)

/// Float unary ops with the float-type-specific fast functions supplied by the caller.
macro_rules! unary_arms {
    ($name:expr, $x:expr, $l:expr, $op:expr, exp = $exp:expr, log = $log:expr, tanh = $tanh:expr, sigmoid = $sig:expr, gelu = $gelu:expr, erf = $erf:expr, softplus = $sp:expr) => {
        match $op {
            UnaryOp::Neg => map1($name, $x, $l, |v| -v),
            UnaryOp::Abs => map1($name, $x, $l, |v| v.abs()),
            UnaryOp::Sign => map1($name, $x, $l, math::sign),
            UnaryOp::Exp => map1($name, $x, $l, $exp),
            UnaryOp::Log => map1($name, $x, $l, $log),
            UnaryOp::Sqrt => map1($name, $x, $l, |v| v.sqrt()),
            UnaryOp::Sin => map1($name, $x, $l, |v| v.sin()),
            UnaryOp::Cos => map1($name, $x, $l, |v| v.cos()),
            UnaryOp::Tanh => map1($name, $x, $l, $tanh),
            UnaryOp::Sigmoid => map1($name, $x, $l, $sig),
            UnaryOp::Relu => map1($name, $x, $l, |v| if v < 0.0 { 0.0 } else { v }),
            UnaryOp::Gelu => map1($name, $x, $l, $gelu),
            UnaryOp::Erf => map1($name, $x, $l, $erf),
            UnaryOp::Softplus => map1($name, $x, $l, $sp),
            UnaryOp::Log1p => map1($name, $x, $l, |v| v.ln_1p()),
            UnaryOp::Expm1 => map1($name, $x, $l, |v| v.exp_m1()),
            UnaryOp::Log2 => map1($name, $x, $l, |v| v.log2()),
            UnaryOp::Log10 => map1($name, $x, $l, |v| v.log10()),
            UnaryOp::Tan => map1($name, $x, $l, |v| v.tan()),
            UnaryOp::Asin => map1($name, $x, $l, |v| v.asin()),
            UnaryOp::Acos => map1($name, $x, $l, |v| v.acos()),
            UnaryOp::Atan => map1($name, $x, $l, |v| v.atan()),
            UnaryOp::Sinh => map1($name, $x, $l, |v| v.sinh()),
            UnaryOp::Cosh => map1($name, $x, $l, |v| v.cosh()),
            UnaryOp::Floor => map1($name, $x, $l, |v| v.floor()),
            UnaryOp::Ceil => map1($name, $x, $l, |v| v.ceil()),
            UnaryOp::Round => map1($name, $x, $l, math::round_half_even),
            UnaryOp::Trunc => map1($name, $x, $l, |v| v.trunc()),
            UnaryOp::Erfc => map1($name, $x, $l, |v| math::unary_float(UnaryOp::Erfc, v)),
            UnaryOp::Lgamma => map1($name, $x, $l, |v| math::unary_float(UnaryOp::Lgamma, v)),
            UnaryOp::Digamma => map1($name, $x, $l, |v| math::unary_float(UnaryOp::Digamma, v)),
            UnaryOp::Trigamma => map1($name, $x, $l, |v| math::unary_float(UnaryOp::Trigamma, v)),
        }
    };
}

#[allow(clippy::redundant_closure)] // the closures are the point: see the comment inside
pub fn unary_f32(x: &[f32], l: &Layout, op: UnaryOp) -> Result<Vec<f32>> {
    unary_arms!(
        op.name(),
        x,
        l,
        op,
        // closures marked `inline(always)`, not the bare fn items: a fn item reaches the loop
        // through its `Fn::call` shim, which LLVM declined to inline for the larger bodies
        // (gelu, softplus), leaving a scalar call per element (10 ns instead of ~1)
        exp = #[inline(always)]
        |v| vmath::exp_f32(v),
        log = #[inline(always)]
        |v| vmath::log_f32(v),
        tanh = #[inline(always)]
        |v| vmath::tanh_f32(v),
        sigmoid = #[inline(always)]
        |v| vmath::sigmoid_f32(v),
        gelu = #[inline(always)]
        |v| vmath::gelu_f32(v),
        erf = #[inline(always)]
        |v| vmath::erf_f32(v),
        softplus = #[inline(always)]
        |v| vmath::softplus_f32(v)
    )
}

pub fn unary_f64(x: &[f64], l: &Layout, op: UnaryOp) -> Result<Vec<f64>> {
    // f64 keeps libm's correctly-rounded-ish functions: it is the precision path (gradcheck)
    unary_arms!(
        op.name(),
        x,
        l,
        op,
        exp = |v: f64| v.exp(),
        log = |v: f64| v.ln(),
        tanh = |v: f64| v.tanh(),
        sigmoid = math::sigmoid,
        gelu = |v: f64| math::unary_float(UnaryOp::Gelu, v),
        erf = math::erf,
        softplus = math::softplus
    )
}

/// `g * f'(a)` in one pass (`a` is the op's input or output, see `UnaryOp::fused_grad_input`):
/// the composed rule costs one full-size temporary per primitive of the derivative (eleven for
/// GELU), this one loop.
macro_rules! unary_backward_arms {
    ($t:ty, $name:expr, $a:expr, $al:expr, $g:expr, $gl:expr, $op:expr, exp = $exp:expr, erf = $erf:expr, cdf = $cdf:expr, sigmoid = $sig:expr) => {
        match $op {
            UnaryOp::Gelu => map2(
                $name,
                $a,
                $al,
                $g,
                $gl,
                #[inline(always)]
                |x: $t, g: $t| {
                    // d/dx x Phi(x) = Phi(x) + x phi(x), the composed rule's formula
                    let cdf = $cdf(x);
                    // 1/sqrt(2 pi) = (2/sqrt pi) (1/sqrt 2) / 2
                    let inv_sqrt_2pi = (std::f64::consts::FRAC_2_SQRT_PI
                        * std::f64::consts::FRAC_1_SQRT_2
                        * 0.5) as $t;
                    let pdf = inv_sqrt_2pi * $exp(-0.5 * x * x);
                    g * (cdf + x * pdf)
                },
            ),
            UnaryOp::Erf => map2(
                $name,
                $a,
                $al,
                $g,
                $gl,
                #[inline(always)]
                |x: $t, g: $t| g * (std::f64::consts::FRAC_2_SQRT_PI as $t) * $exp(-(x * x)),
            ),
            UnaryOp::Softplus => map2(
                $name,
                $a,
                $al,
                $g,
                $gl,
                #[inline(always)]
                |x: $t, g: $t| g * $sig(x),
            ),
            UnaryOp::Tanh => map2(
                $name,
                $a,
                $al,
                $g,
                $gl,
                #[inline(always)]
                |y: $t, g: $t| g * (1.0 - y * y),
            ),
            UnaryOp::Sigmoid => map2(
                $name,
                $a,
                $al,
                $g,
                $gl,
                #[inline(always)]
                |y: $t, g: $t| g * (y * (1.0 - y)),
            ),
            _ => Err(crate::Error::Unsupported {
                op: $name,
                device: crate::Device::Cpu,
                msg: "no fused derivative kernel (its gradient is composed)".into(),
            }),
        }
    };
}

pub fn unary_backward_f32(
    a: &[f32],
    al: &Layout,
    g: &[f32],
    gl: &Layout,
    op: UnaryOp,
) -> Result<Vec<f32>> {
    unary_backward_arms!(
        f32,
        op.name(),
        a,
        al,
        g,
        gl,
        op,
        exp = vmath::exp_f32,
        erf = vmath::erf_f32,
        cdf = vmath::normal_cdf_f32,
        sigmoid = vmath::sigmoid_f32
    )
}

pub fn unary_backward_f64(
    a: &[f64],
    al: &Layout,
    g: &[f64],
    gl: &Layout,
    op: UnaryOp,
) -> Result<Vec<f64>> {
    unary_backward_arms!(
        f64,
        op.name(),
        a,
        al,
        g,
        gl,
        op,
        exp = f64::exp,
        erf = math::erf::<f64>,
        cdf = |x: f64| 0.5 * (1.0 + math::erf(x * std::f64::consts::FRAC_1_SQRT_2)),
        sigmoid = math::sigmoid::<f64>
    )
}

pub fn unary_i64(x: &[i64], l: &Layout, op: UnaryOp) -> Result<Vec<i64>> {
    let name = op.name();
    match op {
        UnaryOp::Neg => map1(name, x, l, |v: i64| v.wrapping_neg()),
        UnaryOp::Abs => map1(name, x, l, |v: i64| v.wrapping_abs()),
        UnaryOp::Sign => map1(name, x, l, |v: i64| v.signum()),
        // rounding an integer is the identity (a copy: the output is a new tensor)
        UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Trunc => {
            map1(name, x, l, |v: i64| v)
        }
        _ => map1(name, x, l, |v: i64| v.max(0)),
    }
}

pub fn binary_float<T: FloatElement>(
    a: &[T],
    al: &Layout,
    b: &[T],
    bl: &Layout,
    op: BinaryOp,
) -> Result<Vec<T>> {
    let name = op.name();
    match op {
        BinaryOp::Add => map2(name, a, al, b, bl, |x, y| x + y),
        BinaryOp::Sub => map2(name, a, al, b, bl, |x, y| x - y),
        BinaryOp::Mul => map2(name, a, al, b, bl, |x, y| x * y),
        BinaryOp::Div => map2(name, a, al, b, bl, |x, y| x / y),
        BinaryOp::Pow => map2(name, a, al, b, bl, |x: T, y: T| x.powf(y)),
        BinaryOp::Maximum => map2(name, a, al, b, bl, math::max_nan),
        BinaryOp::Minimum => map2(name, a, al, b, bl, math::min_nan),
        BinaryOp::Atan2 => map2(name, a, al, b, bl, |x: T, y: T| x.atan2(y)),
        BinaryOp::Fmod => map2(name, a, al, b, bl, math::fmod),
        BinaryOp::Remainder => map2(name, a, al, b, bl, math::remainder),
        BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => Err(crate::Error::DType {
            op: name,
            dtype: T::DTYPE,
            detail: " (bitwise ops are defined for integer and bool tensors only)".into(),
        }),
    }
}

pub fn binary_i64(
    a: &[i64],
    al: &Layout,
    b: &[i64],
    bl: &Layout,
    op: BinaryOp,
) -> Result<Vec<i64>> {
    let name = op.name();
    match op {
        BinaryOp::Add => map2(name, a, al, b, bl, |x: i64, y: i64| x.wrapping_add(y)),
        BinaryOp::Sub => map2(name, a, al, b, bl, |x: i64, y: i64| x.wrapping_sub(y)),
        BinaryOp::Mul => map2(name, a, al, b, bl, |x: i64, y: i64| x.wrapping_mul(y)),
        BinaryOp::Maximum => map2(name, a, al, b, bl, |x: i64, y: i64| x.max(y)),
        BinaryOp::Minimum => map2(name, a, al, b, bl, |x: i64, y: i64| x.min(y)),
        BinaryOp::BitAnd => map2(name, a, al, b, bl, |x: i64, y: i64| x & y),
        BinaryOp::BitOr => map2(name, a, al, b, bl, |x: i64, y: i64| x | y),
        BinaryOp::BitXor => map2(name, a, al, b, bl, |x: i64, y: i64| x ^ y),
        _ => map2(name, a, al, b, bl, |x, y| math::binary_i64(op, x, y)),
    }
}

pub fn binary_bool(a: &[u8], al: &Layout, b: &[u8], bl: &Layout, op: BinaryOp) -> Result<Vec<u8>> {
    map2(op.name(), a, al, b, bl, |x, y| math::binary_bool(op, x, y))
}

pub fn compare<T: Element>(
    a: &[T],
    al: &Layout,
    b: &[T],
    bl: &Layout,
    op: CmpOp,
) -> Result<Vec<u8>> {
    let name = op.name();
    match op {
        CmpOp::Eq => map2(name, a, al, b, bl, |x, y| (x == y) as u8),
        CmpOp::Ne => map2(name, a, al, b, bl, |x, y| (x != y) as u8),
        CmpOp::Lt => map2(name, a, al, b, bl, |x, y| (x < y) as u8),
        CmpOp::Le => map2(name, a, al, b, bl, |x, y| (x <= y) as u8),
        CmpOp::Gt => map2(name, a, al, b, bl, |x, y| (x > y) as u8),
        CmpOp::Ge => map2(name, a, al, b, bl, |x, y| (x >= y) as u8),
    }
}
