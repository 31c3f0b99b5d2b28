//! The GPU from Rust: what the Python suite cannot reach. Every primitive's values and gradients
//! on the GPU are checked against the CPU by the op table (tests/test_ops.py, every row on every
//! device) and tests/test_gpu_parity.py; here remain the Rust-only API (update rules, the loss
//! API, int64 at the Rust level, transfers and limits) and the host-work counters of a training
//! step (allocations, bind groups, dispatches after warm-up).
//!
//! Each check runs the same function on CPU tensors and on copies of them on the GPU, then
//! compares values elementwise: |gpu - cpu| <= atol + rtol * |cpu|, NaN where the CPU has NaN.
//!
//! Without an adapter every test prints why and passes, unless `BACKPROP_REQUIRE_GPU=1` (CI), in
//! which case a missing adapter fails. The tests share one device and its buffer pool, so they
//! take a lock and run one at a time (the allocation-count test needs that too).

#![cfg(feature = "gpu")]
// `&[x.clone()]` reads as "these inputs"; slice::from_ref would not.
#![allow(clippy::cloned_ref_to_slice_refs)]

use backprop::nn::loss::{self, ClassLossOptions};
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

/// The fused attention kernels (`shaders/attention.wgsl`) against the CPU's, causal and not,
/// with more than one 256-row tile on each side and L != S.
#[test]
fn fused_attention_matches_cpu() {
    let Some(_g) = gpu() else { return };
    manual_seed(11);
    for &(l, s, causal) in &[(300, 520, true), (300, 520, false), (5, 3, true)] {
        let (q, k, v) = (randn(&[2, l, 16]), randn(&[2, s, 16]), randn(&[2, s, 24]));
        check(
            &format!("attention l={l} s={s} causal={causal}"),
            |x| Tensor::scaled_dot_product_attention(&x[0], &x[1], &x[2], None, causal),
            &[q, k, v],
            (2e-5, 1e-4),
        );
    }
}

/// The LSTM layer's fused cell kernels (`lstm_cell`, `lstm_cell_backward` in
/// elementwise.wgsl) through `nn::rnn::lstm_layer`, both directions, against the CPU.
#[test]
fn lstm_layer_matches_cpu() {
    let Some(_g) = gpu() else { return };
    manual_seed(12);
    for reverse in [false, true] {
        let (xw, h0, c0, w) = (
            randn(&[6, 3, 20]),
            randn(&[3, 5]),
            randn(&[3, 5]),
            randn(&[20, 5]),
        );
        check(
            &format!("lstm_layer reverse={reverse}"),
            |x| {
                let (o, h, c) = backprop::nn::rnn::lstm_layer(&x[0], &x[1], &x[2], &x[3], reverse)?;
                o.sum_all()?
                    .add(&h.mul_scalar(2.0)?.sum_all()?)?
                    .add(&c.sum_all()?)
            },
            &[xw, h0, c0, w],
            (2e-5, 1e-4),
        );
    }
}

/// The fused unary derivatives (`unary_backward` in elementwise.wgsl) against the CPU's, on a
/// transposed view with values in the tails; `check` compares the forward and the gradient.
#[test]
fn fused_unary_derivatives() {
    need_gpu!();
    let vals: Vec<f32> = (0..48).map(|i| -12.0 + 0.5 * i as f32).collect();
    let x = Tensor::from_vec(vals, [6, 8], Device::Cpu)
        .unwrap()
        .t()
        .unwrap();
    check("gelu", |v| v[0].gelu(), &[x.clone()], EW);
    check("erf", |v| v[0].erf(), &[x.clone()], EW);
    check("tanh", |v| v[0].tanh(), &[x.clone()], EW);
    check("sigmoid", |v| v[0].sigmoid(), &[x.clone()], EW);
    check("softplus", |v| v[0].softplus(1.0, 20.0), &[x.clone()], EW);
}

/// The fused layer-norm kernels (`layer_norm.wgsl`) against the CPU's: rows longer than one
/// workgroup (300 > 256 threads), a transposed input, a constant row, and the affine form with
/// weight and bias; `check` compares the forward and every input's gradient.
#[test]
fn fused_layer_norm() {
    use backprop::nn::functional::layer_norm;
    need_gpu!();
    manual_seed(8);
    let mut vals = randn(&[7, 300]).to_vec::<f32>().unwrap();
    for v in &mut vals[300..600] {
        *v = -1.5;
    }
    let long = Tensor::from_vec(vals, [7, 300], Device::Cpu).unwrap();
    check(
        "layer_norm rows of 300",
        |v| v[0].normalize_trailing(1, 1e-5),
        &[long],
        RED,
    );
    let x = randn(&[6, 5]).t().unwrap();
    check(
        "layer_norm of a transposed view, weight and bias",
        |v| layer_norm(&v[0], &[6], Some(&v[1]), Some(&v[2]), 1e-5),
        &[x, randn(&[6]), randn(&[6])],
        RED,
    );
    check(
        "layer_norm over two dims",
        |v| v[0].normalize_trailing(2, 1e-5),
        &[randn(&[3, 4, 5])],
        RED,
    );
}
