//! Every gradient rule against f64 central differences, and second derivatives through
//! `gradgradcheck`. Inputs are small, random (seeded) and include broadcasting and
//! non-contiguous views, because most gradient bugs hide in a stride or a broadcast dim.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads best in test tables

use backprop::gradcheck::{gradcheck, gradgradcheck, GradcheckOptions};
use backprop::nn::loss::{self, ClassLossOptions, Reduction};
use backprop::{manual_seed, DType, Device, Result, Tensor};

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, Device::Cpu)
        .unwrap()
        .requires_grad_(true)
        .unwrap()
}
fn positive(shape: &[usize]) -> Tensor {
    let t = Tensor::rand(shape.to_vec(), DType::F64, Device::Cpu)
        .unwrap()
        .add_scalar(0.5)
        .unwrap();
    t.requires_grad_(true).unwrap()
}
fn check(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    let g = |xs: &[Tensor]| f(xs).map(|t| vec![t]);
    let opts = GradcheckOptions::default();
    if let Err(e) = gradcheck(&g, inputs, opts) {
        panic!("gradcheck failed for {name}: {e}");
    }
    if let Err(e) = gradgradcheck(&g, inputs, opts) {
        panic!("gradgradcheck failed for {name}: {e}");
    }
}

#[test]
fn unary_rules() {
    manual_seed(0);
    let x = randn(&[3, 4]);
    let p = positive(&[3, 4]);
    check("neg", |v| v[0].neg(), &[x.clone()]);
    check("exp", |v| v[0].exp(), &[x.clone()]);
    check("log", |v| v[0].log(), &[p.clone()]);
    check("sqrt", |v| v[0].sqrt(), &[p.clone()]);
    check("abs", |v| v[0].abs(), &[x.clone()]);
    check("sin", |v| v[0].sin(), &[x.clone()]);
    check("cos", |v| v[0].cos(), &[x.clone()]);
    check("tanh", |v| v[0].tanh(), &[x.clone()]);
    check("sigmoid", |v| v[0].sigmoid(), &[x.clone()]);
    check("relu", |v| v[0].relu(), &[x.clone()]);
    check("leaky_relu", |v| v[0].leaky_relu(0.1), &[x.clone()]);
    check("gelu", |v| v[0].gelu(), &[x.clone()]);
    check("gelu_tanh", |v| v[0].gelu_tanh(), &[x.clone()]);
    check("erf", |v| v[0].erf(), &[x.clone()]);
    check("softplus", |v| v[0].softplus(1.0, 20.0), &[x.clone()]);
    check("softplus_beta", |v| v[0].softplus(2.0, 20.0), &[x.clone()]);
    check("clamp", |v| v[0].clamp(Some(-0.5), Some(0.5)), &[x.clone()]);
    check("pow_scalar", |v| v[0].pow_scalar(3.0), &[x.clone()]);
    check("pow_frac", |v| v[0].pow_scalar(1.5), &[p.clone()]);
}

#[test]
fn binary_rules_with_broadcasting() {
    manual_seed(1);
    let a = randn(&[2, 3]);
    let b = randn(&[3]);
    let c = randn(&[2, 1]);
    let p = positive(&[2, 3]);
    let q = positive(&[3]);
    check("add", |v| v[0].add(&v[1]), &[a.clone(), b.clone()]);
    check("sub", |v| v[0].sub(&v[1]), &[a.clone(), c.clone()]);
    check("mul", |v| v[0].mul(&v[1]), &[a.clone(), b.clone()]);
    check("div", |v| v[0].div(&v[1]), &[a.clone(), q.clone()]);
    check("pow", |v| v[0].pow(&v[1]), &[p.clone(), b.clone()]);
    check("maximum", |v| v[0].maximum(&v[1]), &[a.clone(), c.clone()]);
    check("minimum", |v| v[0].minimum(&v[1]), &[a.clone(), b.clone()]);
    check(
        "where",
        |v| Tensor::where_cond(&v[0].gt_scalar(0.0)?, &v[0], &v[1]),
        &[a.clone(), c.clone()],
    );
    check(
        "scalar_ops",
        |v| v[0].mul_scalar(3.0)?.rsub_scalar(1.0)?.rdiv_scalar(2.0),
        &[p.clone()],
    );
}

#[test]
fn reduction_rules() {
    manual_seed(2);
    let x = randn(&[3, 4, 2]);
    check("sum_all", |v| v[0].sum_all(), &[x.clone()]);
    check("sum_dims", |v| v[0].sum(&[0i64, 2], false), &[x.clone()]);
    check("sum_keepdim", |v| v[0].sum(&[1i64], true), &[x.clone()]);
    check("mean", |v| v[0].mean(&[-1i64], false), &[x.clone()]);
    check("amax", |v| v[0].amax(&[1i64], false), &[x.clone()]);
    check("amin", |v| v[0].amin(&[0i64, 1], true), &[x.clone()]);
    check("max_all", |v| v[0].max_all(), &[x.clone()]);
    check(
        "max_dim",
        |v| Ok(v[0].max_dim(1i64, false)?.0),
        &[x.clone()],
    );
    check("var", |v| v[0].var(&[1i64], 1.0, false), &[x.clone()]);
    check("std", |v| v[0].std(&[0i64], 1.0, true), &[x.clone()]);
    check(
        "logsumexp",
        |v| v[0].logsumexp(&[2i64], false),
        &[x.clone()],
    );
}

#[test]
fn matmul_rules() {
    manual_seed(3);
    check(
        "mm",
        |v| v[0].matmul(&v[1]),
        &[randn(&[3, 4]), randn(&[4, 2])],
    );
    check("mv", |v| v[0].matmul(&v[1]), &[randn(&[3, 4]), randn(&[4])]);
    check("vm", |v| v[0].matmul(&v[1]), &[randn(&[4]), randn(&[4, 2])]);
    check("dot", |v| v[0].matmul(&v[1]), &[randn(&[4]), randn(&[4])]);
    check(
        "batched_broadcast",
        |v| v[0].matmul(&v[1]),
        &[randn(&[2, 1, 3, 4]), randn(&[3, 4, 2])],
    );
    check(
        "transposed",
        |v| v[0].t()?.matmul(&v[1].t()?),
        &[randn(&[4, 3]), randn(&[2, 4])],
    );
}

#[test]
fn view_rules() {
    manual_seed(4);
    let x = randn(&[2, 3, 4]);
    check(
        "reshape",
        |v| v[0].reshape([6, 4])?.mul_scalar(2.0),
        &[x.clone()],
    );
    check(
        "permute",
        |v| v[0].permute(&[2i64, 0, 1])?.exp(),
        &[x.clone()],
    );
    check(
        "transpose_reshape",
        |v| v[0].transpose(0i64, 2)?.reshape([4, 6]),
        &[x.clone()],
    );
    check(
        "unsqueeze_expand",
        |v| v[0].unsqueeze(1i64)?.expand(&[2, 5, 3, 4])?.sin(),
        &[x.clone()],
    );
    check(
        "slice",
        |v| {
            v[0].slice(2i64, Some(1), None, 2)?
                .mul(&v[0].slice(2i64, None, Some(2), 1)?)
        },
        &[x.clone()],
    );
    check("select", |v| v[0].select(1i64, -1), &[x.clone()]);
    check(
        "narrow",
        |v| v[0].narrow(0i64, 1, 1)?.squeeze(None),
        &[x.clone()],
    );
    check("flatten", |v| v[0].flatten(1i64, 2), &[x.clone()]);
    check(
        "contiguous",
        |v| v[0].t()?.contiguous()?.cos(),
        &[randn(&[3, 5])],
    );
}

#[test]
fn index_rules() {
    manual_seed(5);
    let x = randn(&[3, 4]);
    let idx = Tensor::from_vec(vec![0i64, 3, 3, 1, 2, 0], [3, 2], Device::Cpu).unwrap();
    let sel = Tensor::from_vec(vec![2i64, 0, 2], [3], Device::Cpu).unwrap();
    check("gather", |v| v[0].gather(1i64, &idx), &[x.clone()]);
    check(
        "scatter_add",
        |v| v[0].scatter_add(1i64, &idx, &v[1]),
        &[x.clone(), randn(&[3, 2])],
    );
    check(
        "index_select",
        |v| v[0].index_select(0i64, &sel),
        &[x.clone()],
    );
    check(
        "index_add",
        |v| v[0].index_add(0i64, &sel, &v[1]),
        &[x.clone(), randn(&[3, 4])],
    );
    check(
        "cat",
        |v| Tensor::cat(&[v[0].clone(), v[1].clone()], 1i64),
        &[x.clone(), randn(&[3, 2])],
    );
    check(
        "stack",
        |v| Tensor::stack(&[v[0].clone(), v[1].clone()], 0i64),
        &[x.clone(), randn(&[3, 4])],
    );
    check(
        "slice_scatter",
        |v| v[0].slice_scatter(&v[1], 1, 1, 2),
        &[x.clone(), randn(&[3, 2])],
    );
}

#[test]
fn softmax_and_losses() {
    manual_seed(6);
    let x = randn(&[4, 5]);
    check("softmax", |v| v[0].softmax(-1i64), &[x.clone()]);
    check("softmax_dim0", |v| v[0].softmax(0i64), &[x.clone()]);
    check("log_softmax", |v| v[0].log_softmax(1i64), &[x.clone()]);
    let target = Tensor::from_vec(vec![1i64, 0, 4, 2], [4], Device::Cpu).unwrap();
    let opts = ClassLossOptions::default();
    check(
        "cross_entropy",
        |v| loss::cross_entropy(&v[0], &target, &opts),
        &[x.clone()],
    );
    let smooth = ClassLossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    check(
        "cross_entropy_smooth",
        |v| loss::cross_entropy(&v[0], &target, &smooth),
        &[x.clone()],
    );
    let probs = Tensor::rand([4, 5], DType::F64, Device::Cpu)
        .unwrap()
        .softmax(1i64)
        .unwrap();
    check(
        "cross_entropy_probs",
        |v| loss::cross_entropy(&v[0], &probs, &opts),
        &[x.clone()],
    );
    check(
        "nll_loss",
        |v| loss::nll_loss(&v[0].log_softmax(1i64)?, &target, &opts),
        &[x.clone()],
    );
    let y = Tensor::rand([4, 5], DType::F64, Device::Cpu).unwrap();
    check(
        "mse",
        |v| loss::mse_loss(&v[0], &y, Reduction::Mean),
        &[x.clone()],
    );
    check(
        "l1",
        |v| loss::l1_loss(&v[0], &y, Reduction::Sum),
        &[x.clone()],
    );
    check(
        "bce_logits",
        |v| loss::binary_cross_entropy_with_logits(&v[0], &y, None, None, Reduction::Mean),
        &[x.clone()],
    );
}

#[test]
fn convolution_and_pooling_rules() {
    use backprop::nn::conv::{self, PadMode, Padding};
    use backprop::op::Window;
    manual_seed(7);
    let x = randn(&[2, 3, 5, 6]);
    let w = Window {
        kernel: (2, 3),
        stride: (1, 2),
        padding: (1, 1),
        dilation: (2, 1),
    };
    check("unfold", |v| v[0].unfold(w, 0.0), &[x.clone()]);
    let cols = randn(&[2, 3 * 6, 2 * 3]);
    check(
        "fold",
        |v| {
            v[0].fold(
                Window {
                    kernel: (2, 3),
                    stride: (2, 2),
                    padding: (0, 1),
                    dilation: (1, 1),
                },
                (4, 5),
            )
        },
        &[cols],
    );
    let wt = randn(&[4, 3, 3, 3]);
    let b = randn(&[4]);
    check(
        "conv2d",
        |v| {
            conv::conv2d(
                &v[0],
                &v[1],
                Some(&v[2]),
                (1, 1),
                Padding::Explicit(1, 1),
                (1, 1),
                1,
            )
        },
        &[x.clone(), wt.clone(), b.clone()],
    );
    check(
        "conv2d_stride_dilation",
        |v| {
            conv::conv2d(
                &v[0],
                &v[1],
                None,
                (2, 1),
                Padding::Explicit(0, 2),
                (1, 2),
                1,
            )
        },
        &[x.clone(), wt.clone()],
    );
    let wg = randn(&[4, 1, 2, 2]);
    let xg = randn(&[1, 2, 4, 4]);
    check(
        "conv2d_groups_same",
        |v| conv::conv2d(&v[0], &v[1], None, (1, 1), Padding::Same, (1, 1), 2),
        &[xg.clone(), wg],
    );
    let wtr = randn(&[3, 2, 3, 3]);
    check(
        "conv_transpose2d",
        |v| conv::conv_transpose2d(&v[0], &v[1], None, (2, 2), (1, 1), (1, 1), 1, (1, 1)),
        &[randn(&[1, 3, 3, 3]), wtr],
    );
    check(
        "max_pool2d",
        |v| Ok(conv::max_pool2d(&v[0], (2, 2), None, (0, 0), (1, 1), false, false)?.0),
        &[x.clone()],
    );
    check(
        "max_pool2d_pad",
        |v| Ok(conv::max_pool2d(&v[0], (3, 3), Some((2, 2)), (1, 1), (1, 1), false, false)?.0),
        &[x.clone()],
    );
    check(
        "avg_pool2d",
        |v| conv::avg_pool2d(&v[0], (2, 3), Some((1, 2)), (1, 1), false, false, None),
        &[x.clone()],
    );
    check(
        "adaptive_avg_pool2d",
        |v| conv::adaptive_avg_pool2d(&v[0], (3, 4)),
        &[x.clone()],
    );
    check(
        "pad_constant",
        |v| conv::pad(&v[0], &[1, 2, 0, 1], PadMode::Constant, 0.5),
        &[x.clone()],
    );
    check(
        "pad_reflect",
        |v| conv::pad(&v[0], &[2, 1, 1, 1], PadMode::Reflect, 0.0),
        &[x.clone()],
    );
    check(
        "pad_replicate",
        |v| conv::pad(&v[0], &[2, 3], PadMode::Replicate, 0.0),
        &[x.clone()],
    );
}

/// The fused attention primitive: its gradient against central differences (the fused backward
/// kernel), its second derivative (the composed rule under `create_graph`), causal and not,
/// with L != S so the causal mask's alignment shows.
#[test]
fn attention_rules() {
    manual_seed(3);
    let (q, k, v) = (randn(&[2, 3, 4]), randn(&[2, 5, 4]), randn(&[2, 5, 3]));
    for causal in [false, true] {
        check(
            &format!("attention causal={causal}"),
            |x| Tensor::scaled_dot_product_attention(&x[0], &x[1], &x[2], Some(0.7), causal),
            &[q.clone(), k.clone(), v.clone()],
        );
    }
}

/// The fused kernels against the composed maths at sizes that cross the CPU kernel's query
/// (64) and key (128) blocks, with a 4-d batch, forward and all three gradients.
#[test]
fn fused_attention_matches_the_composed_maths() {
    manual_seed(4);
    for (dtype, tol) in [(DType::F64, 1e-11), (DType::F32, 2e-5)] {
        for &(l, s, causal) in &[
            (150, 300, true),
            (150, 300, false),
            (200, 70, true),
            (1, 129, false),
        ] {
            let mk = |shape: [usize; 4]| {
                Tensor::randn(shape, dtype, Device::Cpu)
                    .unwrap()
                    .requires_grad_(true)
                    .unwrap()
            };
            let (q, k, v) = (mk([2, 2, l, 16]), mk([2, 2, s, 16]), mk([2, 2, s, 8]));
            let g = Tensor::randn([2, 2, l, 8], dtype, Device::Cpu).unwrap();
            let fused = Tensor::scaled_dot_product_attention(&q, &k, &v, None, causal).unwrap();
            // the reference: scores, an explicit -inf mask, softmax, matmul
            let (qr, kr, vr) = (q.detach(), k.detach(), v.detach());
            let (qr, kr, vr) = (
                qr.requires_grad_(true).unwrap(),
                kr.requires_grad_(true).unwrap(),
                vr.requires_grad_(true).unwrap(),
            );
            let mut scores = qr
                .matmul(&kr.transpose(2, 3).unwrap())
                .unwrap()
                .mul_scalar(0.25)
                .unwrap();
            if causal {
                let m: Vec<f64> = (0..l * s)
                    .map(|ij| {
                        if ij % s <= ij / s {
                            0.0
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect();
                let m = Tensor::from_vec(m, [l, s], Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                scores = scores.add(&m).unwrap();
            }
            let want = scores.softmax(3).unwrap().matmul(&vr).unwrap();
            let err = |a: &Tensor, b: &Tensor| {
                a.sub(b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .item()
                    .unwrap()
            };
            let what = format!("{dtype:?} l={l} s={s} causal={causal}");
            assert!(
                err(&fused, &want) < tol,
                "forward {what}: {}",
                err(&fused, &want)
            );
            fused
                .mul(&g)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            want.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, a, b) in [("q", &q, &qr), ("k", &k, &kr), ("v", &v, &vr)] {
                let (ga, gb) = (a.grad().unwrap(), b.grad().unwrap());
                assert!(
                    err(&ga, &gb) < tol * 10.0,
                    "grad {name} {what}: {}",
                    err(&ga, &gb)
                );
            }
        }
    }
}

/// The LSTM layer's hand-written backward through time (`nn::rnn::lstm_layer`) against central
/// differences, both directions, all three outputs used; the second derivative goes through
/// its recorded recomputation (`create_graph`).
#[test]
fn lstm_layer_rules() {
    manual_seed(5);
    let (t, b, h) = (4, 2, 3);
    let inputs = [
        randn(&[t, b, 4 * h]),
        randn(&[b, h]),
        randn(&[b, h]),
        randn(&[4 * h, h]),
    ];
    for reverse in [false, true] {
        check(
            &format!("lstm_layer reverse={reverse}"),
            |x| {
                let (o, hn, cn) =
                    backprop::nn::rnn::lstm_layer(&x[0], &x[1], &x[2], &x[3], reverse)?;
                // every output reaches the result, each with its own weight
                o.mul_scalar(0.7)?
                    .sum_all()?
                    .add(&hn.mul(&hn)?.sum_all()?)?
                    .add(&cn.mul_scalar(-1.3)?.sum_all()?)
            },
            &inputs,
        );
    }
}

/// The fused derivative kernels (taken when no graph of the gradient is wanted) against the
/// composed formulas (taken under `create_graph`), in f32 and f64, on a transposed view, with
/// values out in the tails (gelu at -9, saturated tanh/sigmoid, erf past 4).
#[test]
fn fused_unary_derivatives_match_the_composed_rules() {
    type F = fn(&Tensor) -> Result<Tensor>;
    let ops: [(&str, F); 5] = [
        ("gelu", |x| x.gelu()),
        ("erf", |x| x.erf()),
        ("tanh", |x| x.tanh()),
        ("sigmoid", |x| x.sigmoid()),
        ("softplus", |x| x.softplus(1.0, 20.0)),
    ];
    manual_seed(3);
    let mut vals: Vec<f64> = (0..40).map(|i| -10.0 + 0.5 * i as f64).collect();
    vals.extend([0.0, -0.0, 1e-4, -1e-4, 30.0, -30.0, 0.3, -0.7]);
    let n = vals.len();
    for dtype in [DType::F32, DType::F64] {
        let base = Tensor::from_vec(vals.clone(), [n / 8, 8], Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let x = base.t().unwrap().detach().requires_grad_(true).unwrap();
        let w = Tensor::randn(x.shape().clone(), dtype, Device::Cpu).unwrap();
        for (name, f) in ops {
            let y = f(&x).unwrap().mul(&w).unwrap().sum_all().unwrap();
            let fused = backprop::autograd::grad(
                &[y.clone()],
                &[x.clone()],
                None,
                Some(true),
                false,
                false,
            )
            .unwrap()[0]
                .clone()
                .unwrap();
            let composed = backprop::autograd::grad(&[y], &[x.clone()], None, None, true, false)
                .unwrap()[0]
                .clone()
                .unwrap();
            assert!(
                composed.requires_grad(),
                "{name}: create_graph gave an untracked gradient"
            );
            assert!(
                !fused.requires_grad(),
                "{name}: the fused gradient is tracked"
            );
            let (a, b) = (fused.to_f64_vec().unwrap(), composed.to_f64_vec().unwrap());
            let tol = if dtype == DType::F32 { 2e-6 } else { 1e-14 };
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (p - q).abs() <= tol * (1.0 + q.abs()),
                    "{name} {dtype:?} at {i}: fused {p} vs composed {q}"
                );
            }
        }
    }
}

/// `Op::LayerNorm` (the fused normalising step): f64 central differences on a transposed view
/// over one and two trailing dims, with weight and bias, and second derivatives (the composed
/// rule under `create_graph`).
#[test]
fn layer_norm_rule() {
    use backprop::nn::functional::layer_norm;
    manual_seed(11);
    let x = randn(&[5, 4]); // its transpose [4, 5] is not contiguous
    let w = randn(&[5]);
    let b = randn(&[5]);
    check(
        "normalize_trailing(1) of a transposed view",
        |v| v[0].t()?.normalize_trailing(1, 1e-5),
        &[x.clone()],
    );
    check(
        "layer_norm with weight and bias",
        |v| layer_norm(&v[0].t()?, &[5], Some(&v[1]), Some(&v[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    let x3 = randn(&[2, 3, 4]);
    check(
        "normalize_trailing(2)",
        |v| v[0].normalize_trailing(2, 1e-3),
        &[x3.clone()],
    );
}

/// The fused layer-norm kernels against an independent f64 implementation (loops over rows):
/// forward values, and the input's gradient for a random upstream gradient, in f32 and f64,
/// with rows longer than the SIMD width plus a tail, a constant row (exactly 0 out) and a row
/// of large offset (where `E[x^2] - E[x]^2` would cancel).
#[test]
fn fused_layer_norm_matches_an_f64_reference() {
    manual_seed(5);
    let (rows, len, eps) = (6usize, 37usize, 1e-5);
    let mut vals = Tensor::randn([rows, len], DType::F64, Device::Cpu)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    for v in &mut vals[len..2 * len] {
        *v = 0.3; // a constant row
    }
    for v in &mut vals[2 * len..3 * len] {
        *v = 100.0 + *v * 0.1; // a large offset with a small spread
    }
    let gv = Tensor::randn([rows, len], DType::F64, Device::Cpu)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    for dtype in [DType::F32, DType::F64] {
        // the reference sees the values the kernel sees (rounded to the dtype)
        let cast = |v: &[f64]| {
            Tensor::from_vec(v.to_vec(), [rows, len], Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        let (xt, gt) = (cast(&vals), cast(&gv));
        let (xs, gs) = (xt.to_f64_vec().unwrap(), gt.to_f64_vec().unwrap());
        let mut want_y = vec![0.0; rows * len];
        let mut want_dx = vec![0.0; rows * len];
        // how much rounding the input to the dtype's precision moves a row's output: |mean| rstd
        let mut cond = vec![0.0; rows];
        for r in 0..rows {
            let (x, g) = (&xs[r * len..][..len], &gs[r * len..][..len]);
            let n = len as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let rstd = 1.0 / (var + eps).sqrt();
            let xhat: Vec<f64> = x.iter().map(|v| (v - mean) * rstd).collect();
            cond[r] = 1.0 + mean.abs() * rstd;
            let gm = g.iter().sum::<f64>() / n;
            let gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n;
            for i in 0..len {
                want_y[r * len + i] = xhat[i];
                want_dx[r * len + i] = rstd * (g[i] - gm - xhat[i] * gx);
            }
        }
        let x = xt.requires_grad_(true).unwrap();
        let y = x.normalize_trailing(1, eps).unwrap();
        let dx = backprop::autograd::grad(
            &[y.clone()],
            &[x.clone()],
            Some(&[Some(gt)]),
            None,
            false,
            false,
        )
        .unwrap()[0]
            .clone()
            .unwrap();
        let (y, dx) = (y.to_f64_vec().unwrap(), dx.to_f64_vec().unwrap());
        // a few ulps of the row's scale: the statistics and `x - mean` round at the scale of
        // |mean| (times rstd in the result), and the gradient's terms at its largest value
        let tol = 8.0 * if dtype == DType::F32 { 1.2e-7 } else { 2.3e-16 };
        for r in 0..rows {
            let scale_dx = want_dx[r * len..][..len]
                .iter()
                .fold(1.0f64, |a, v| a.max(v.abs()));
            for i in r * len..(r + 1) * len {
                assert!(
                    (y[i] - want_y[i]).abs() <= tol * cond[r],
                    "{dtype:?} y[{i}] = {} vs {}",
                    y[i],
                    want_y[i]
                );
                assert!(
                    (dx[i] - want_dx[i]).abs() <= tol * cond[r] * scale_dx,
                    "{dtype:?} dx[{i}] = {} vs {}",
                    dx[i],
                    want_dx[i]
                );
            }
        }
        assert!(
            y[len..2 * len].iter().all(|&v| v == 0.0),
            "{dtype:?}: a constant row must normalise to exactly 0"
        );
    }
}
