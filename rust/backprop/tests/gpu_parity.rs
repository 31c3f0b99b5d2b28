//! Every primitive and its gradient on the GPU against the CPU backend (the reference).
//!
//! Each check runs the same function on CPU tensors and on copies of them on the GPU, then
//! compares values (and, for float outputs, the gradients of `sum(out * w)` for a random `w`)
//! elementwise: |gpu - cpu| <= atol + rtol * |cpu|, NaN where the CPU has NaN, equal infinities.
//! Tolerances: 1e-4 for elementwise ops, 1e-3 for reductions and matmul (the GPU sums in another
//! order). Inputs cover odd sizes, broadcasting (stride 0), transposed and sliced views.
//!
//! Without an adapter every test prints why and passes, unless `BACKPROP_REQUIRE_GPU=1` (CI), in
//! which case a missing adapter fails. The tests share one device and its buffer pool, so they
//! take a lock and run one at a time (the allocation-count test needs that too).

#![cfg(feature = "gpu")]
// `&[x.clone()]` reads as "these inputs"; slice::from_ref would not.
#![allow(clippy::cloned_ref_to_slice_refs)]

use backprop::nn::loss::{self, ClassLossOptions};
use backprop::op::{ArgReduceOp, ReduceOp};
use backprop::{manual_seed, DType, Device, Error, Result, Tensor};
use std::sync::{Mutex, MutexGuard};

const EW: (f64, f64) = (1e-4, 1e-4);
const RED: (f64, f64) = (1e-3, 1e-3);

static SERIAL: Mutex<()> = Mutex::new(());

/// `Some(guard)` when a GPU is there; `None` (test passes, reason printed) when not.
fn gpu() -> Option<MutexGuard<'static, ()>> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    match backprop::gpu::adapter_info() {
        Ok(_) => Some(guard),
        Err(e) => {
            if std::env::var("BACKPROP_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("BACKPROP_REQUIRE_GPU=1 but no GPU adapter is usable: {e}");
            }
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

macro_rules! need_gpu {
    () => {
        let Some(_guard) = gpu() else { return };
    };
}

fn to_gpu(t: &Tensor) -> Tensor {
    t.detach().to_device(Device::Gpu).unwrap()
}

fn assert_close(what: &str, cpu: &Tensor, gpu: &Tensor, (atol, rtol): (f64, f64)) {
    assert_eq!(
        gpu.device(),
        Device::Gpu,
        "{what}: result is not on the GPU"
    );
    assert_eq!(cpu.dims(), gpu.dims(), "{what}: shapes differ");
    assert_eq!(cpu.dtype(), gpu.dtype(), "{what}: dtypes differ");
    let a = cpu.to_f64_vec().unwrap();
    let b = gpu.to_f64_vec().unwrap();
    let mut bad = Vec::new();
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let ok = if x.is_nan() || y.is_nan() {
            x.is_nan() && y.is_nan()
        } else {
            x == y || (x - y).abs() <= atol + rtol * x.abs()
        };
        if !ok {
            bad.push(format!("[{i}] cpu {x} gpu {y}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} elements differ (atol {atol}, rtol {rtol}): {}",
        bad.len(),
        a.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
    );
}

/// Runs `f` on both devices, compares outputs and (for float outputs) input gradients.
fn check(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], tol: (f64, f64)) {
    let cpu_in: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype().is_float() {
                t.detach().requires_grad_(true).unwrap()
            } else {
                t.detach()
            }
        })
        .collect();
    let gpu_in: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype().is_float() {
                to_gpu(t).requires_grad_(true).unwrap()
            } else {
                to_gpu(t)
            }
        })
        .collect();
    let c = f(&cpu_in).unwrap_or_else(|e| panic!("{name} on cpu: {e}"));
    let g = f(&gpu_in).unwrap_or_else(|e| panic!("{name} on gpu: {e}"));
    assert_close(name, &c, &g, tol);
    if !c.dtype().is_float() || !c.requires_grad() {
        return;
    }
    let w = Tensor::randn(c.shape().clone(), c.dtype(), Device::Cpu).unwrap();
    c.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    g.mul(&to_gpu(&w))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (k, (ci, gi)) in cpu_in.iter().zip(&gpu_in).enumerate() {
        match (ci.grad(), gi.grad()) {
            (Some(cg), Some(gg)) => assert_close(
                &format!("{name}: grad of input {k}"),
                &cg,
                &gg,
                (tol.0 * 10.0, tol.1 * 10.0),
            ),
            (None, None) => {}
            (cg, gg) => panic!(
                "{name}: grad of input {k} present on cpu: {}, on gpu: {}",
                cg.is_some(),
                gg.is_some()
            ),
        }
    }
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F32, Device::Cpu).unwrap()
}
fn positive(shape: &[usize]) -> Tensor {
    Tensor::rand(shape.to_vec(), DType::F32, Device::Cpu)
        .unwrap()
        .add_scalar(0.1)
        .unwrap()
}
/// A transposed (non-contiguous) view of `shape`.
fn transposed(shape: &[usize]) -> Tensor {
    let mut s = shape.to_vec();
    let n = s.len();
    s.swap(n - 1, n - 2);
    randn(&s).transpose(n - 1, n - 2).unwrap()
}
fn f32s(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec(), Device::Cpu).unwrap()
}
fn i64s(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape.to_vec(), Device::Cpu).unwrap()
}
fn bools(v: &[bool], shape: &[usize]) -> Tensor {
    Tensor::from_vec(
        v.iter().map(|&b| b as u8).collect::<Vec<u8>>(),
        shape.to_vec(),
        Device::Cpu,
    )
    .unwrap()
}

type UnaryFn = fn(&Tensor) -> Result<Tensor>;
const UNARY: [(&str, UnaryFn, bool); 14] = [
    ("neg", Tensor::neg, false),
    ("abs", Tensor::abs, false),
    ("sign", Tensor::sign, false),
    ("exp", Tensor::exp, false),
    ("log", Tensor::log, true),
    ("sqrt", Tensor::sqrt, true),
    ("sin", Tensor::sin, false),
    ("cos", Tensor::cos, false),
    ("tanh", Tensor::tanh, false),
    ("sigmoid", Tensor::sigmoid, false),
    ("relu", Tensor::relu, false),
    ("gelu", Tensor::gelu, false),
    ("erf", Tensor::erf, false),
    ("softplus", |t| t.softplus(1.0, 20.0), false),
];

#[test]
fn unary_ops_and_gradients() {
    need_gpu!();
    manual_seed(10);
    for (name, f, needs_positive) in UNARY {
        for shape in [&[1usize][..], &[7], &[13, 9]] {
            let x = if needs_positive {
                positive(shape)
            } else {
                randn(shape).mul_scalar(2.0).unwrap()
            };
            check(&format!("{name} {shape:?}"), |v| f(&v[0]), &[x], EW);
        }
        let xt = if needs_positive {
            transposed(&[5, 6]).abs().unwrap().add_scalar(0.1).unwrap()
        } else {
            transposed(&[5, 6])
        };
        check(&format!("{name} transposed"), |v| f(&v[0]), &[xt], EW);
    }
}

#[test]
fn unary_special_values() {
    need_gpu!();
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e30,
        -1e30,
        88.0,
        -88.0,
        100.0,
        -100.0,
        0.5,
        -0.5,
        3.0,
        -3.0,
        10.0,
        -10.0,
    ];
    let x = f32s(&specials, &[specials.len()]);
    for (name, f, _) in UNARY {
        if name == "sin" || name == "cos" {
            // f32 sin/cos of huge arguments carry no information; check finite moderate ones
            let moderate: Vec<f32> = specials
                .iter()
                .copied()
                .filter(|v| v.is_nan() || v.abs() <= 100.0)
                .collect();
            let m = f32s(&moderate, &[moderate.len()]);
            check(&format!("{name} specials"), |v| f(&v[0]), &[m], EW);
            continue;
        }
        check(
            &format!("{name} specials"),
            |v| f(&v[0].detach()),
            &[x.clone()],
            EW,
        );
    }
}

#[test]
fn integer_unary_and_binary_ops() {
    need_gpu!();
    let a = i64s(&[-7, -1, 0, 1, 5, 2147483647, -2147483647, 3], &[8]);
    let b = i64s(&[2, -3, 5, 0, -2, 1, -1, 4], &[8]);
    for (name, f) in [
        ("neg", Tensor::neg as UnaryFn),
        ("abs", Tensor::abs),
        ("sign", Tensor::sign),
        ("relu", Tensor::relu),
    ] {
        check(&format!("int {name}"), |v| f(&v[0]), &[a.clone()], EW);
    }
    // small operands: the GPU wraps at 32 bits where the CPU wraps at 64, so stay in range
    let sa = i64s(&[-7, -1, 0, 1, 5, 12, -3, 3], &[8]);
    check("int add", |v| v[0].add(&v[1]), &[sa.clone(), b.clone()], EW);
    check("int sub", |v| v[0].sub(&v[1]), &[sa.clone(), b.clone()], EW);
    check("int mul", |v| v[0].mul(&v[1]), &[sa.clone(), b.clone()], EW);
    check("int pow", |v| v[0].pow(&v[1]), &[sa.clone(), b.clone()], EW);
    check(
        "int maximum",
        |v| v[0].maximum(&v[1]),
        &[sa.clone(), b.clone()],
        EW,
    );
    check(
        "int minimum",
        |v| v[0].minimum(&v[1]),
        &[sa.clone(), b.clone()],
        EW,
    );
    check(
        "int true division",
        |v| v[0].div(&v[1]),
        &[sa.clone(), b.clone()],
        EW,
    );
    // the integer division kernel itself (the tensor layer promotes `/` to float)
    let cpu = backprop::cpu::CpuStorage::from_vec(vec![7i64, -7, 7, 0, -2147483647, 9]);
    let den = backprop::cpu::CpuStorage::from_vec(vec![2i64, 2, 0, 3, -1, -4]);
    let l = backprop::Layout::contiguous([6]);
    use backprop::backend::BackendStorage;
    let want = cpu
        .binary(&l, &den, &l, backprop::op::BinaryOp::Div)
        .unwrap()
        .to_f64_vec(&l)
        .unwrap();
    let gc = backprop::gpu::GpuStorage::from_cpu(&cpu, &l).unwrap();
    let gd = backprop::gpu::GpuStorage::from_cpu(&den, &l).unwrap();
    let got = gc
        .binary(&l, &gd, &l, backprop::op::BinaryOp::Div)
        .unwrap()
        .to_cpu(&l)
        .unwrap()
        .to_f64_vec(&l)
        .unwrap();
    assert_eq!(want, got, "integer division kernel");
    let p = bools(&[true, true, false, false], &[4]);
    let q = bools(&[true, false, true, false], &[4]);
    check(
        "bool and",
        |v| v[0].logical_and(&v[1]),
        &[p.clone(), q.clone()],
        EW,
    );
    check(
        "bool or",
        |v| v[0].logical_or(&v[1]),
        &[p.clone(), q.clone()],
        EW,
    );
    check("bool not", |v| v[0].logical_not(), &[p.clone()], EW);
}

#[test]
fn binary_ops_broadcast_and_strided() {
    need_gpu!();
    manual_seed(11);
    let a = randn(&[4, 1, 5]);
    let b = randn(&[3, 5]);
    let bt = transposed(&[3, 5]);
    let denom = randn(&[3, 5])
        .sign()
        .unwrap()
        .mul(&positive(&[3, 5]).add_scalar(0.5).unwrap())
        .unwrap();
    check("add", |v| v[0].add(&v[1]), &[a.clone(), b.clone()], EW);
    check("sub", |v| v[0].sub(&v[1]), &[a.clone(), bt.clone()], EW);
    check("mul", |v| v[0].mul(&v[1]), &[a.clone(), bt.clone()], EW);
    check("div", |v| v[0].div(&v[1]), &[a.clone(), denom], EW);
    check(
        "pow",
        |v| v[0].pow(&v[1]),
        &[positive(&[4, 1, 5]), b.clone()],
        EW,
    );
    // ties exercise maximum/minimum's split gradient
    let ra = randn(&[6, 5])
        .mul_scalar(2.0)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let rb = randn(&[5])
        .mul_scalar(2.0)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    check(
        "maximum",
        |v| v[0].maximum(&v[1]),
        &[ra.clone(), rb.clone()],
        EW,
    );
    check(
        "minimum",
        |v| v[0].minimum(&v[1]),
        &[ra.clone(), rb.clone()],
        EW,
    );
    check(
        "scalar ops",
        |v| {
            v[0].mul_scalar(3.0)?
                .add_scalar(1.0)?
                .rdiv_scalar(2.0)?
                .pow_scalar(2.0)
        },
        &[positive(&[7])],
        EW,
    );
    // pow's real cases: negative bases with integer exponents, zeros, NaN
    let base = f32s(
        &[
            -2.0,
            -2.0,
            -1.5,
            0.0,
            -0.0,
            0.0,
            2.0,
            f32::NAN,
            1.0,
            -3.0,
            4.0,
        ],
        &[11],
    );
    let expo = f32s(
        &[
            3.0,
            2.0,
            0.5,
            2.0,
            3.0,
            -1.0,
            -2.0,
            0.0,
            f32::NAN,
            -3.0,
            0.5,
        ],
        &[11],
    );
    check(
        "pow special",
        |v| v[0].detach().pow(&v[1].detach()),
        &[base, expo],
        EW,
    );
    let nan = f32s(&[f32::NAN, 1.0, f32::NAN, -0.0], &[4]);
    let other = f32s(&[1.0, f32::NAN, f32::NAN, 0.0], &[4]);
    check(
        "maximum NaN",
        |v| v[0].detach().maximum(&v[1].detach()),
        &[nan.clone(), other.clone()],
        EW,
    );
    check(
        "minimum NaN",
        |v| v[0].detach().minimum(&v[1].detach()),
        &[nan, other],
        EW,
    );
}

#[test]
fn comparisons_where_and_casts() {
    need_gpu!();
    let a = f32s(&[1.0, 2.0, f32::NAN, -0.0, 3.0, f32::INFINITY], &[6]);
    let b = f32s(&[1.0, 3.0, 1.0, 0.0, f32::NAN, f32::INFINITY], &[6]);
    let ia = i64s(&[1, -2, 3, 4, 5, -6], &[6]);
    let ib = i64s(&[1, 2, 3, -4, 6, -6], &[6]);
    let ba = bools(&[true, false, true, false, true, false], &[6]);
    let bb = bools(&[true, true, false, false, true, true], &[6]);
    for op in [
        backprop::op::CmpOp::Eq,
        backprop::op::CmpOp::Ne,
        backprop::op::CmpOp::Lt,
        backprop::op::CmpOp::Le,
        backprop::op::CmpOp::Gt,
        backprop::op::CmpOp::Ge,
    ] {
        check(
            &format!("{op:?} f32"),
            |v| v[0].detach().compare(&v[1].detach(), op),
            &[a.clone(), b.clone()],
            EW,
        );
        check(
            &format!("{op:?} i64"),
            |v| v[0].compare(&v[1], op),
            &[ia.clone(), ib.clone()],
            EW,
        );
        check(
            &format!("{op:?} bool"),
            |v| v[0].compare(&v[1], op),
            &[ba.clone(), bb.clone()],
            EW,
        );
    }
    manual_seed(12);
    let cond = randn(&[4, 1]).gt_scalar(0.0).unwrap();
    check(
        "where broadcast",
        |v| Tensor::where_cond(&v[0], &v[1], &v[2]),
        &[
            cond.clone(),
            randn(&[4, 5]),
            randn(&[5, 2]).select(1usize, 0).unwrap(),
        ],
        EW,
    );
    check(
        "where int",
        |v| Tensor::where_cond(&v[0], &v[1], &v[2]),
        &[
            bools(&[true, false, true], &[3]),
            i64s(&[1, 2, 3], &[3]),
            i64s(&[-1, -2, -3], &[3]),
        ],
        EW,
    );
    // casts between every pair of device dtypes (values inside int32: see gpu/mod.rs)
    let floats = f32s(&[1.7, -1.7, 2.5, -0.0, f32::NAN, 0.0, 1e9, -1e9, 0.1], &[9]);
    let ints = i64s(&[0, 1, -1, 7, 2147483647, -2147483648, 3, 0, 5], &[9]);
    let bs = bools(
        &[true, false, true, true, false, false, true, false, true],
        &[9],
    );
    for (src, name) in [(floats, "f32"), (ints, "i64"), (bs, "bool")] {
        for dt in [DType::F32, DType::I64, DType::Bool] {
            check(
                &format!("cast {name} -> {dt}"),
                |v| v[0].detach().to_dtype(dt),
                &[src.clone()],
                EW,
            );
        }
    }
    // a differentiable cast round trip on a strided view
    check(
        "contiguous copy",
        |v| v[0].contiguous(),
        &[transposed(&[3, 4])],
        EW,
    );
}

#[test]
fn reductions() {
    need_gpu!();
    manual_seed(13);
    let x = randn(&[5, 6, 7]);
    let xp = randn(&[7, 5, 6]).permute(&[1, 2, 0]).unwrap();
    let dim_sets: [&[usize]; 6] = [&[0], &[1], &[2], &[0, 2], &[1, 2], &[0, 1, 2]];
    for dims in dim_sets {
        for (label, t) in [("contiguous", &x), ("permuted", &xp)] {
            check(
                &format!("sum {dims:?} {label}"),
                |v| v[0].sum(dims, false),
                &[t.clone()],
                RED,
            );
            check(
                &format!("amax {dims:?} {label}"),
                |v| v[0].amax(dims, true),
                &[t.clone()],
                RED,
            );
            check(
                &format!("amin {dims:?} {label}"),
                |v| v[0].amin(dims, false),
                &[t.clone()],
                RED,
            );
        }
    }
    // ties: max's gradient is shared among the maxima
    let ties = f32s(&[1.0, 3.0, 3.0, -1.0, 2.0, 2.0], &[2, 3]);
    check(
        "amax ties",
        |v| v[0].amax(&[1usize], false),
        &[ties.clone()],
        RED,
    );
    check(
        "max NaN",
        |v| v[0].detach().amax(&[0usize], false),
        &[f32s(&[1.0, f32::NAN, 2.0], &[3])],
        RED,
    );
    // long rows (several workgroups per output, then a second pass), many short rows (thin)
    check(
        "sum long rows",
        |v| v[0].sum(&[1usize], false),
        &[randn(&[3, 10000])],
        RED,
    );
    check(
        "sum all 1000003",
        |v| v[0].sum_all(),
        &[randn(&[1000003])],
        RED,
    );
    check(
        "max all 1000003",
        |v| v[0].max_all(),
        &[randn(&[1000003])],
        RED,
    );
    check(
        "sum many short rows",
        |v| v[0].sum(&[1usize], false),
        &[randn(&[20000, 3])],
        RED,
    );
    check(
        "sum over the batch dim",
        |v| v[0].sum(&[0usize], false),
        &[randn(&[3, 20000])],
        RED,
    );
    check(
        "mean/var",
        |v| v[0].var(&[1usize], 1.0, false),
        &[randn(&[9, 31])],
        RED,
    );
    // integer and bool reductions
    let ints = i64s(&[3, -1, 4, 1, -5, 9, 2, 6], &[2, 4]);
    check(
        "int sum",
        |v| v[0].sum(&[1usize], false),
        &[ints.clone()],
        RED,
    );
    check(
        "int max",
        |v| v[0].amax(&[0usize], false),
        &[ints.clone()],
        RED,
    );
    let bs = bools(&[true, false, false, false, true, true], &[2, 3]);
    check(
        "bool any",
        |v| v[0].reduce(ReduceOp::Max, &[1usize], false),
        &[bs.clone()],
        RED,
    );
    check(
        "bool all",
        |v| v[0].reduce(ReduceOp::Min, &[1usize], false),
        &[bs.clone()],
        RED,
    );
    check(
        "bool sum",
        |v| v[0].reduce(ReduceOp::Sum, &[0usize], false),
        &[bs],
        RED,
    );
    // an empty reduction is 0
    check(
        "sum of empty",
        |v| v[0].sum(&[1usize], false),
        &[Tensor::zeros([3, 0], DType::F32, Device::Cpu).unwrap()],
        RED,
    );
}

#[test]
fn arg_reductions() {
    need_gpu!();
    manual_seed(14);
    let ties = f32s(
        &[
            1.0,
            3.0,
            3.0,
            -1.0,
            -1.0,
            2.0,
            0.0,
            f32::NAN,
            f32::NAN,
            5.0,
            5.0,
            5.0,
        ],
        &[3, 4],
    );
    let big = randn(&[4, 3000]);
    // several chunks per row: partial winners, then the winner among them
    let very_long = randn(&[3, 20000]);
    let many = randn(&[300, 5000]).t().unwrap();
    let ints = i64s(&[2, 7, 7, -1, 0, 7], &[2, 3]);
    for op in [ArgReduceOp::ArgMax, ArgReduceOp::ArgMin] {
        let f = |t: &Tensor, d: i64| match op {
            ArgReduceOp::ArgMax => t.argmax(Some(d), false),
            ArgReduceOp::ArgMin => t.argmin(Some(d), false),
        };
        check(
            &format!("{op:?} ties dim 1"),
            |v| f(&v[0].detach(), 1),
            &[ties.clone()],
            EW,
        );
        check(
            &format!("{op:?} ties dim 0"),
            |v| f(&v[0].detach(), 0),
            &[ties.clone()],
            EW,
        );
        check(
            &format!("{op:?} long rows"),
            |v| f(&v[0].detach(), 1),
            &[big.clone()],
            EW,
        );
        check(
            &format!("{op:?} very long rows"),
            |v| f(&v[0].detach(), 1),
            &[very_long.clone()],
            EW,
        );
        check(
            &format!("{op:?} many long rows"),
            |v| f(&v[0].detach(), 0),
            &[many.clone()],
            EW,
        );
        check(
            &format!("{op:?} transposed"),
            |v| f(&v[0].detach(), 0),
            &[transposed(&[6, 9])],
            EW,
        );
        check(&format!("{op:?} int"), |v| f(&v[0], 1), &[ints.clone()], EW);
    }
    check(
        "max_dim values and grad",
        |v| v[0].max_dim(1usize, false).map(|r| r.0),
        &[randn(&[5, 8])],
        RED,
    );
}

#[test]
fn matmul_shapes_layouts_and_dtypes() {
    need_gpu!();
    manual_seed(15);
    check(
        "1x1",
        |v| v[0].matmul(&v[1]),
        &[randn(&[1, 1]), randn(&[1, 1])],
        RED,
    );
    check(
        "127x129 @ 129x65",
        |v| v[0].matmul(&v[1]),
        &[randn(&[127, 129]), randn(&[129, 65])],
        RED,
    );
    check(
        "A^T B",
        |v| v[0].t()?.matmul(&v[1]),
        &[randn(&[129, 127]), randn(&[129, 33])],
        RED,
    );
    check(
        "A B^T",
        |v| v[0].matmul(&v[1].t()?),
        &[randn(&[70, 40]), randn(&[66, 40])],
        RED,
    );
    check(
        "batched",
        |v| v[0].matmul(&v[1]),
        &[randn(&[3, 17, 19]), randn(&[3, 19, 23])],
        RED,
    );
    check(
        "broadcast batch",
        |v| v[0].matmul(&v[1]),
        &[randn(&[2, 1, 9, 10]), randn(&[4, 10, 3])],
        RED,
    );
    check(
        "matrix @ vector",
        |v| v[0].matmul(&v[1]),
        &[randn(&[6, 5]), randn(&[5])],
        RED,
    );
    check(
        "vector @ matrix",
        |v| v[0].matmul(&v[1]),
        &[randn(&[5]), randn(&[5, 6])],
        RED,
    );
    check(
        "k = 0",
        |v| v[0].matmul(&v[1]),
        &[randn(&[3, 0]), randn(&[0, 4])],
        RED,
    );
    check(
        "int64",
        |v| v[0].matmul(&v[1]),
        &[
            i64s(&[1, 2, 3, 4, 5, 6], &[2, 3]),
            i64s(&[7, -8, 9, 10, 11, -12], &[3, 2]),
        ],
        RED,
    );
}

#[test]
fn softmax_and_log_softmax() {
    need_gpu!();
    manual_seed(16);
    let x = randn(&[4, 7, 5]);
    for d in 0..3usize {
        check(
            &format!("softmax dim {d}"),
            |v| v[0].softmax(d),
            &[x.clone()],
            EW,
        );
        check(
            &format!("log_softmax dim {d}"),
            |v| v[0].log_softmax(d),
            &[x.clone()],
            EW,
        );
    }
    check(
        "softmax long rows",
        |v| v[0].softmax(1usize),
        &[randn(&[3, 1000]).mul_scalar(5.0).unwrap()],
        EW,
    );
    check(
        "log_softmax long rows",
        |v| v[0].log_softmax(1usize),
        &[randn(&[3, 1000]).mul_scalar(5.0).unwrap()],
        EW,
    );
    check(
        "softmax many rows",
        |v| v[0].softmax(1usize),
        &[randn(&[20000, 10])],
        EW,
    );
    check(
        "softmax transposed",
        |v| v[0].log_softmax(0usize),
        &[transposed(&[9, 300])],
        EW,
    );
    let inf = f32s(
        &[
            f32::NEG_INFINITY,
            0.0,
            1.0,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ],
        &[2, 3],
    );
    check(
        "softmax -inf",
        |v| v[0].detach().softmax(1usize),
        &[inf.clone()],
        EW,
    );
    check(
        "log_softmax -inf",
        |v| v[0].detach().log_softmax(1usize),
        &[inf],
        EW,
    );
}

#[test]
fn indexing_ops_and_their_gradients() {
    need_gpu!();
    manual_seed(17);
    let x = randn(&[4, 6]);
    let idx1 = i64s(&[5, 0, 0, 1, 2, 3, 4, 4, 5, 0, 1, 1], &[4, 3]);
    check(
        "gather dim 1",
        |v| v[0].gather(1usize, &v[1]),
        &[x.clone(), idx1.clone()],
        EW,
    );
    let idx0 = i64s(&[3, 0, 1, 2, 2, 2], &[1, 6]);
    check(
        "gather dim 0",
        |v| v[0].gather(0usize, &v[1]),
        &[x.clone(), idx0.clone()],
        EW,
    );
    check(
        "gather transposed",
        |v| v[0].gather(1usize, &v[1]),
        &[transposed(&[4, 6]), idx1.clone()],
        EW,
    );
    let sel = i64s(&[2, 0, 2, 5], &[4]);
    check(
        "index_select dim 1",
        |v| v[0].index_select(1usize, &v[1]),
        &[x.clone(), sel.clone()],
        EW,
    );
    check(
        "index_select dim 0",
        |v| v[0].index_select(0usize, &v[1]),
        &[x.clone(), i64s(&[3, 3, 0], &[3])],
        EW,
    );
    check(
        "scatter_add",
        |v| v[0].scatter_add(1usize, &v[1], &v[2]),
        &[x.clone(), idx1.clone(), randn(&[4, 3])],
        EW,
    );
    check(
        "index_add",
        |v| v[0].index_add(1usize, &v[1], &v[2]),
        &[x.clone(), sel.clone(), randn(&[4, 4])],
        EW,
    );
    check(
        "int scatter_add",
        |v| v[0].scatter_add(0usize, &v[1], &v[2]),
        &[
            i64s(&[0; 6], &[2, 3]),
            i64s(&[1, 0, 1, 1, 1, 0], &[2, 3]),
            i64s(&[1, 2, 3, 4, 5, 6], &[2, 3]),
        ],
        EW,
    );
    // a bad index is an error naming it, as on the CPU (the GPU reports it at the readback)
    let bad = i64s(&[0, 6, -1], &[1, 3]);
    for dev in [Device::Cpu, Device::Gpu] {
        let err = x
            .to_device(dev)
            .unwrap()
            .gather(1usize, &bad.to_device(dev).unwrap())
            .and_then(|t| t.to_f64_vec())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::IndexOutOfRange {
                    op: "gather",
                    index: 6,
                    dim: 1,
                    size: 6
                }
            ),
            "{dev}: {err}"
        );
    }
    let err = to_gpu(&x)
        .index_select(0usize, &to_gpu(&i64s(&[0, 4], &[2])))
        .and_then(|t| t.to_f64_vec())
        .unwrap_err();
    assert!(
        matches!(err, Error::IndexOutOfRange { index: 4, .. }),
        "{err}"
    );
    // slicing, concatenation and in-place copies go through copy_into
    check(
        "cat",
        |v| Tensor::cat(&[v[0].clone(), v[1].t()?], 0usize),
        &[randn(&[2, 3]), randn(&[3, 4])],
        EW,
    );
    check(
        "slice_scatter",
        |v| v[0].slice_scatter(&v[1], 1, 1, 2),
        &[randn(&[3, 6]), randn(&[3, 3])],
        EW,
    );
    for dev in [Device::Cpu, Device::Gpu] {
        let dst = Tensor::zeros([3, 4], DType::F32, dev).unwrap();
        dst.narrow(1usize, 1, 2)
            .unwrap()
            .copy_(&Tensor::ones([3, 2], DType::F32, dev).unwrap())
            .unwrap();
        assert_eq!(
            dst.to_vec::<f32>().unwrap(),
            vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
            "copy_ into a slice on {dev}"
        );
    }
}

#[test]
fn creation_transfer_and_dtype_rules() {
    need_gpu!();
    for dt in [DType::F32, DType::I64, DType::Bool] {
        let t = Tensor::full([2, 3], 5.0, dt, Device::Gpu).unwrap();
        assert_eq!(t.dtype(), dt);
        assert_eq!(
            t.to_f64_vec().unwrap(),
            vec![if dt == DType::Bool { 1.0 } else { 5.0 }; 6]
        );
    }
    // round trips, including a strided view on each side
    let x = randn(&[5, 7]);
    let back = to_gpu(&x.t().unwrap())
        .t()
        .unwrap()
        .to_device(Device::Cpu)
        .unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    let ints = i64s(&[i32::MAX as i64, i32::MIN as i64, 0, -5], &[4]);
    assert_eq!(
        to_gpu(&ints).to_vec::<i64>().unwrap(),
        ints.to_vec::<i64>().unwrap()
    );
    // float64 never reaches the GPU: a clear error naming op, dtype and device
    let f64t = Tensor::ones([2], DType::F64, Device::Cpu).unwrap();
    for err in [
        f64t.to_device(Device::Gpu).unwrap_err(),
        Tensor::zeros([2], DType::F64, Device::Gpu).unwrap_err(),
        to_gpu(&x).to_dtype(DType::F64).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    device: Device::Gpu,
                    ..
                }
            ) && msg.contains("float64")
                && msg.contains("gpu"),
            "{msg}"
        );
    }
    // int64 keeps all 64 bits on the device (two words per value), through arithmetic too
    let big = i64s(&[1, 1 << 40, -(1 << 62), i64::MIN], &[4]);
    let g = big.to_device(Device::Gpu).unwrap();
    assert_eq!(
        g.to_vec::<i64>().unwrap(),
        vec![1, 1 << 40, -(1 << 62), i64::MIN]
    );
    let twice = g.add(&g).unwrap().to_vec::<i64>().unwrap();
    assert_eq!(twice, vec![2, 1 << 41, i64::MIN, 0], "wrapping int64 add");
    // a tensor larger than one storage binding is refused with the limit named, not a crash
    let limit = backprop::gpu::adapter_info()
        .unwrap()
        .limits
        .iter()
        .find(|l| l.0 == "max_storage_buffer_binding_size")
        .unwrap()
        .1;
    let err = Tensor::zeros([(limit / 4 + 1) as usize], DType::F32, Device::Gpu).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { op: "full", .. })
            && err.to_string().contains(&limit.to_string()),
        "{err}"
    );
    // mixing devices names both
    let err = x.add(&to_gpu(&x)).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::DeviceMismatch { .. }) && msg.contains("cpu") && msg.contains("gpu"),
        "{msg}"
    );
    // moving is differentiable: the gradient comes back to the CPU leaf
    let leaf = randn(&[3]).requires_grad_(true).unwrap();
    leaf.to_device(Device::Gpu)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(leaf.grad().unwrap().device(), Device::Cpu);
    assert_eq!(leaf.grad().unwrap().to_vec::<f32>().unwrap(), vec![3.0; 3]);
}

#[test]
fn more_than_65535_workgroups() {
    need_gpu!();
    manual_seed(18);
    // 65535 * 256 + 1000 elements: a 1-D grid would need more than 65535 workgroups
    let n = 65535 * 256 + 1000;
    let x = randn(&[n]);
    let (c, g) = (x.clone(), to_gpu(&x));
    assert_close(
        "exp large",
        &c.mul_scalar(0.5).unwrap().exp().unwrap(),
        &g.mul_scalar(0.5).unwrap().exp().unwrap(),
        EW,
    );
    assert_close(
        "sum large",
        &c.sum_all().unwrap(),
        &g.sum_all().unwrap(),
        (1e-2, 1e-3),
    );
    assert_close(
        "argmax large",
        &c.argmax(None, false).unwrap(),
        &g.argmax(None, false).unwrap(),
        EW,
    );
    let rows = x.reshape([n / 8, 8]).unwrap();
    assert_close(
        "softmax many rows",
        &rows.softmax(1usize).unwrap(),
        &to_gpu(&rows).softmax(1usize).unwrap(),
        EW,
    );
}

fn mlp_step(params: &[Tensor], x: &Tensor, y: &Tensor, lr: f64) -> f64 {
    let h = x
        .matmul(&params[0])
        .unwrap()
        .add(&params[1])
        .unwrap()
        .relu()
        .unwrap();
    let logits = h.matmul(&params[2]).unwrap().add(&params[3]).unwrap();
    let loss = loss::cross_entropy(&logits, y, &ClassLossOptions::default()).unwrap();
    loss.backward().unwrap();
    let _g = backprop::no_grad();
    for p in params {
        let g = p.grad().unwrap();
        p.copy_(&p.sub(&g.mul_scalar(lr).unwrap()).unwrap())
            .unwrap();
        p.set_grad(None).unwrap();
    }
    loss.item().unwrap()
}

#[test]
fn mlp_training_matches_cpu_and_stops_allocating() {
    need_gpu!();
    manual_seed(19);
    let x = randn(&[64, 10]);
    let y = Tensor::randint(0, 3, [64], Device::Cpu).unwrap();
    let init = [
        randn(&[10, 16]).mul_scalar(0.3).unwrap(),
        Tensor::zeros([16], DType::F32, Device::Cpu).unwrap(),
        randn(&[16, 3]).mul_scalar(0.3).unwrap(),
        Tensor::zeros([3], DType::F32, Device::Cpu).unwrap(),
    ];
    let cpu: Vec<Tensor> = init
        .iter()
        .map(|t| {
            t.detach()
                .contiguous_copy()
                .unwrap()
                .detach()
                .requires_grad_(true)
                .unwrap()
        })
        .collect();
    let gpu: Vec<Tensor> = init
        .iter()
        .map(|t| to_gpu(t).requires_grad_(true).unwrap())
        .collect();
    let (gx, gy) = (to_gpu(&x), to_gpu(&y));
    let mut created = Vec::new();
    for step in 0..6 {
        let lc = mlp_step(&cpu, &x, &y, 0.5);
        let lg = mlp_step(&gpu, &gx, &gy, 0.5);
        assert!(
            (lc - lg).abs() <= 1e-3 + 1e-3 * lc.abs(),
            "step {step}: cpu loss {lc}, gpu loss {lg}"
        );
        created.push(backprop::gpu::buffers_created());
    }
    for (k, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert_close(&format!("parameter {k} after training"), c, g, RED);
    }
    // after warm-up the pool serves every buffer a step needs
    assert_eq!(
        created[2], created[5],
        "device buffers were created after warm-up: {created:?}"
    );
}

#[test]
fn convolution_family_and_gradients() {
    use backprop::nn::conv::{self, PadMode, Padding};
    use backprop::op::Window;
    need_gpu!();
    let x = randn(&[2, 3, 9, 8]);
    let w = Window {
        kernel: (3, 2),
        stride: (2, 1),
        padding: (1, 1),
        dilation: (1, 2),
    };
    check("unfold", |v| v[0].unfold(w, 0.0), &[x.clone()], RED);
    check(
        "unfold_neg_inf",
        |v| v[0].unfold(w, f64::NEG_INFINITY),
        &[x.clone()],
        RED,
    );
    let cols = randn(&[2, 3 * 6, 5 * 8]);
    check("fold", |v| v[0].fold(w, (9, 8)), &[cols], RED);
    let wt = randn(&[4, 3, 3, 3]);
    let b = randn(&[4]);
    check(
        "conv2d",
        |v| conv::conv2d(&v[0], &v[1], Some(&v[2]), (1, 1), Padding::Same, (1, 1), 1),
        &[x.clone(), wt, b],
        RED,
    );
    check(
        "conv2d_groups",
        |v| {
            conv::conv2d(
                &v[0],
                &v[1],
                None,
                (2, 2),
                Padding::Explicit(1, 0),
                (1, 1),
                2,
            )
        },
        &[randn(&[1, 4, 7, 7]), randn(&[6, 2, 3, 3])],
        RED,
    );
    check(
        "conv_transpose2d",
        |v| conv::conv_transpose2d(&v[0], &v[1], None, (2, 2), (1, 1), (1, 1), 1, (1, 1)),
        &[randn(&[1, 3, 4, 4]), randn(&[3, 2, 3, 3])],
        RED,
    );
    check(
        "max_pool2d",
        |v| Ok(conv::max_pool2d(&v[0], (2, 2), None, (0, 0), (1, 1), false, false)?.0),
        &[x.clone()],
        RED,
    );
    check(
        "avg_pool2d",
        |v| conv::avg_pool2d(&v[0], (3, 3), Some((2, 2)), (1, 1), false, false, None),
        &[x.clone()],
        RED,
    );
    check(
        "adaptive_avg_pool2d",
        |v| conv::adaptive_avg_pool2d(&v[0], (4, 3)),
        &[x.clone()],
        RED,
    );
    check(
        "pad_reflect",
        |v| conv::pad(&v[0], &[2, 1, 1, 2], PadMode::Reflect, 0.0),
        &[x.clone()],
        RED,
    );
}

/// What one MLP training step (forward, backward, Adam step, loss readback) costs the host after
/// warm-up, counted: submissions, dispatches, compute passes, bind groups and buffers created.
/// Printed with `--nocapture`; the bounds asserted are the ones the backend is built to keep.
/// On lavapipe (the counts are the same on any adapter), before and after the work on this:
///   before: 5 submits, 136 dispatches, 136 compute passes, 136 bind groups, 5 readbacks
///   after:  3 submits,  46 dispatches,   3 compute passes,   0 bind groups, 3 readbacks
/// (readbacks left: the loss, and the index checks of the loss's gather and of its gradient).
#[test]
fn training_step_host_work_after_warm_up() {
    use backprop::optim::{Adam, AdamConfig, Optimizer};
    need_gpu!();
    manual_seed(23);
    let x = to_gpu(&randn(&[64, 10]));
    let y = to_gpu(&Tensor::randint(0, 3, [64], Device::Cpu).unwrap());
    let params: Vec<Tensor> = [
        randn(&[10, 16]).mul_scalar(0.3).unwrap(),
        randn(&[16]),
        randn(&[16, 3]).mul_scalar(0.3).unwrap(),
        randn(&[3]),
    ]
    .iter()
    .map(|t| to_gpu(t).requires_grad_(true).unwrap())
    .collect();
    let mut opt = Adam::new(params.clone(), AdamConfig::default());
    let mut per_step = Vec::new();
    for _ in 0..8 {
        let before = backprop::gpu::counters();
        let h = x
            .matmul(&params[0])
            .unwrap()
            .add(&params[1])
            .unwrap()
            .relu()
            .unwrap();
        let logits = h.matmul(&params[2]).unwrap().add(&params[3]).unwrap();
        let l = loss::cross_entropy(&logits, &y, &ClassLossOptions::default()).unwrap();
        l.backward().unwrap();
        let before_opt = backprop::gpu::counters();
        opt.step().unwrap();
        let opt_step = backprop::gpu::counters().since(&before_opt);
        opt.zero_grad().unwrap();
        l.item().unwrap();
        per_step.push((backprop::gpu::counters().since(&before), opt_step));
    }
    for (i, (c, o)) in per_step.iter().enumerate() {
        eprintln!("step {i}: {c:?}\n  of which optimizer: {o:?}");
    }
    let steady = per_step[5].0;
    for (i, (c, o)) in per_step.iter().enumerate().skip(5) {
        // the pool serves every buffer and the bind-group cache every binding
        assert_eq!(
            (c.buffers_created, c.bind_groups_created),
            (0, 0),
            "step {i} after warm-up: {c:?}"
        );
        // dispatches share a compute pass until a copy or a submission ends it
        assert!(c.compute_passes <= c.submits + 1, "step {i}: {c:?}");
        assert_eq!(*c, steady, "step {i} does different work from step 5");
        // the fused update: one dispatch per parameter, nothing submitted or read back
        assert_eq!(
            (o.dispatches, o.submits, o.readbacks),
            (params.len() as u64, 0, 0),
            "optimizer at step {i}: {o:?}"
        );
        // the loss's readback and the index checks of its gather (forward and backward)
        assert!(c.readbacks <= 3 && c.submits <= 3, "step {i}: {c:?}");
    }
}

/// The optimizer rules the fused-update parity tests run, as functions of the step t (1-based).
#[allow(clippy::type_complexity)]
fn optimizer_rules() -> Vec<(
    &'static str,
    usize,
    Box<dyn Fn(i32) -> backprop::optim::update::Rule>,
)> {
    use backprop::optim::update::Rule;
    fn adam(
        lr: f64,
        weight_decay: f64,
        decoupled: bool,
        amsgrad: bool,
        maximize: bool,
    ) -> Box<dyn Fn(i32) -> Rule> {
        Box::new(move |t| Rule::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            amsgrad,
            maximize,
            step: t as u64,
        })
    }
    fn rms(
        momentum: f64,
        centered: bool,
        weight_decay: f64,
        maximize: bool,
    ) -> Box<dyn Fn(i32) -> Rule> {
        Box::new(move |_| Rule::RmsProp {
            lr: 1e-2,
            alpha: 0.9,
            eps: 1e-8,
            weight_decay,
            momentum,
            centered,
            maximize,
        })
    }
    fn sgd(
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
        maximize: bool,
    ) -> Box<dyn Fn(i32) -> Rule> {
        Box::new(move |t| Rule::Sgd {
            lr: 0.05,
            momentum,
            dampening,
            nesterov,
            weight_decay,
            maximize,
            first_step: t == 1,
        })
    }
    fn adagrad(weight_decay: f64, maximize: bool) -> Box<dyn Fn(i32) -> Rule> {
        Box::new(move |t| Rule::Adagrad {
            lr: 0.1,
            lr_decay: 0.01,
            weight_decay,
            eps: 1e-10,
            maximize,
            step: t as u64,
        })
    }
    vec![
        ("sgd", 0, sgd(0.0, 0.0, false, 1e-2, false)),
        ("sgd maximize", 0, sgd(0.0, 0.0, false, 0.0, true)),
        (
            "sgd momentum dampening weight_decay",
            1,
            sgd(0.9, 0.1, false, 1e-3, false),
        ),
        ("sgd nesterov maximize", 1, sgd(0.9, 0.0, true, 0.0, true)),
        ("adam", 2, adam(1e-2, 0.0, false, false, false)),
        (
            "adam l2 amsgrad maximize",
            3,
            adam(1e-2, 1e-2, false, true, true),
        ),
        ("adamw", 2, adam(1e-2, 1e-2, true, false, false)),
        ("adamw amsgrad", 3, adam(1e-2, 0.1, true, true, false)),
        ("rmsprop", 1, rms(0.0, false, 0.0, false)),
        ("rmsprop centered", 2, rms(0.0, true, 0.0, false)),
        (
            "rmsprop momentum weight_decay",
            2,
            rms(0.9, false, 1e-2, false),
        ),
        (
            "rmsprop centered momentum maximize",
            3,
            rms(0.5, true, 0.0, true),
        ),
        ("adagrad weight_decay", 1, adagrad(1e-2, false)),
        ("adagrad maximize", 1, adagrad(0.0, true)),
    ]
}

/// The GPU's fused optimizer kernels (shaders/optim.wgsl) against the CPU's fused loop: 20-step
/// trajectories of every rule and option, on sizes around the workgroup (1, 257) and beyond,
/// with a gradient viewed at an offset. Each GPU step must be one dispatch (the fused kernel,
/// not the composite fallback). Tolerance 1e-4 (the kernels do the same f32 arithmetic; only
/// sqrt/division rounding and FMA contraction may differ).
#[test]
fn fused_optimizer_updates_match_cpu_over_20_steps() {
    use backprop::optim::update::apply;
    need_gpu!();
    for (name, n_states, rule) in optimizer_rules() {
        for n in [1usize, 257, 5000] {
            manual_seed(31);
            let p0 = randn(&[n]);
            let cpu_p = p0.contiguous_copy().unwrap();
            let gpu_p = to_gpu(&p0);
            let cpu_s: Vec<Tensor> = (0..n_states)
                .map(|_| Tensor::zeros([n], DType::F32, Device::Cpu).unwrap())
                .collect();
            let gpu_s: Vec<Tensor> = (0..n_states)
                .map(|_| Tensor::zeros([n], DType::F32, Device::Gpu).unwrap())
                .collect();
            for t in 1..=20 {
                // the gradient is row 1 of a [2, n] tensor: contiguous, at offset n
                let g2 = randn(&[2, n]);
                let g = g2.select(0usize, 1).unwrap();
                let gg = to_gpu(&g2).select(0usize, 1).unwrap();
                apply(&cpu_p, &g, &cpu_s, &rule(t))
                    .unwrap_or_else(|e| panic!("{name} n={n} step {t} on cpu: {e}"));
                let before = backprop::gpu::counters();
                apply(&gpu_p, &gg, &gpu_s, &rule(t))
                    .unwrap_or_else(|e| panic!("{name} n={n} step {t} on gpu: {e}"));
                let c = backprop::gpu::counters().since(&before);
                assert_eq!(
                    c.dispatches, 1,
                    "{name} n={n} step {t}: the GPU update took {c:?}"
                );
            }
            assert_close(
                &format!("{name} n={n}: parameter after 20 steps"),
                &cpu_p,
                &gpu_p,
                EW,
            );
            for (k, (c, g)) in cpu_s.iter().zip(&gpu_s).enumerate() {
                assert_close(&format!("{name} n={n}: state {k} after 20 steps"), c, g, EW);
            }
        }
    }
}

/// Decaying state that falls below the smallest normal float is flushed to zero on the GPU as on
/// the CPU (see `ftz` in optim/update.rs), and a NaN gradient propagates the same way.
#[test]
fn fused_optimizer_flushes_denormal_state_like_the_cpu() {
    use backprop::optim::update::{apply, Rule};
    need_gpu!();
    let tiny = Tensor::from_vec(vec![2e-38f32, -3e-38, 1e-30, 0.5], [4], Device::Cpu).unwrap();
    let zero_g = Tensor::zeros([4], DType::F32, Device::Cpu).unwrap();
    let sgd = Rule::Sgd {
        lr: 0.1,
        momentum: 0.5,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        maximize: false,
        first_step: false,
    };
    let adam = Rule::Adam {
        lr: 1e-3,
        beta1: 0.5,
        beta2: 0.5,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        amsgrad: false,
        maximize: false,
        step: 1,
    };
    let rms = Rule::RmsProp {
        lr: 1e-3,
        alpha: 0.5,
        eps: 1e-8,
        weight_decay: 0.0,
        momentum: 0.5,
        centered: true,
        maximize: false,
    };
    for (name, rule, n_states) in [("sgd", sgd, 1), ("adam", adam, 2), ("rmsprop", rms, 3)] {
        let p = Tensor::ones([4], DType::F32, Device::Cpu).unwrap();
        let st: Vec<Tensor> = (0..n_states)
            .map(|_| tiny.contiguous_copy().unwrap())
            .collect();
        let gp = to_gpu(&p);
        let gst: Vec<Tensor> = st.iter().map(to_gpu).collect();
        apply(&p, &zero_g, &st, &rule).unwrap();
        apply(&gp, &to_gpu(&zero_g), &gst, &rule).unwrap();
        for (k, (c, g)) in st.iter().zip(&gst).enumerate() {
            let (c, g) = (c.to_vec::<f32>().unwrap(), g.to_vec::<f32>().unwrap());
            assert_eq!(c[0], 0.0, "{name} state {k}: the CPU kept a denormal {c:?}");
            for (x, y) in c.iter().zip(&g) {
                let same = x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-6 * x.abs();
                assert!(same, "{name} state {k}: cpu {c:?} gpu {g:?}");
            }
            assert!(
                !g.iter().any(|v| *v != 0.0 && v.abs() < f32::MIN_POSITIVE),
                "{name} state {k}: a denormal survived on the GPU: {g:?}"
            );
        }
        assert_close(&format!("{name}: parameter"), &p, &gp, EW);
    }
}

/// A label outside [0, C) is an IndexOutOfRange naming the loss on both devices (found by the
/// gather's own index check: no separate min/max readback per step).
#[test]
fn cross_entropy_reports_a_bad_label_on_both_devices() {
    need_gpu!();
    let logits = randn(&[3, 3]);
    let labels = Tensor::from_vec(vec![0i64, 1, 9], [3], Device::Cpu).unwrap();
    for (dev, (x, y)) in [
        ("cpu", (logits.clone(), labels.clone())),
        ("gpu", (to_gpu(&logits), to_gpu(&labels))),
    ] {
        // the GPU checks indices on the device and reports a bad one at the next readback
        let err = loss::cross_entropy(&x, &y, &ClassLossOptions::default())
            .and_then(|l| l.item())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::IndexOutOfRange {
                    op: "cross_entropy",
                    index: 9,
                    dim: 1,
                    size: 3
                }
            ),
            "{dev}: {err}"
        );
    }
}
