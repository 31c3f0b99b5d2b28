//! CPU kernels against naive f64 references, over contiguous, transposed and broadcast layouts.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads best in test tables

use backprop::{manual_seed, DType, Device, Tensor};

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, Device::Cpu).unwrap()
}

/// Row-major multi-index of a flat position.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = i % dims[d];
        i /= dims[d];
    }
    idx
}

#[test]
fn reductions_over_every_dim_subset_and_layout() {
    manual_seed(10);
    let base = randn(&[3, 4, 5]);
    let views = [
        base.clone(),
        base.permute(&[2usize, 0, 1]).unwrap(),
        base.slice(1i64, Some(1), None, 2).unwrap(),
    ];
    for x in views {
        let vals = x.to_f64_vec().unwrap();
        let dims = x.dims().to_vec();
        for mask in 1..(1 << dims.len()) {
            let red: Vec<usize> = (0..dims.len()).filter(|d| mask & (1 << d) != 0).collect();
            let out_dims: Vec<usize> = (0..dims.len())
                .map(|d| if red.contains(&d) { 1 } else { dims[d] })
                .collect();
            let n_out: usize = out_dims.iter().product();
            let mut sum = vec![0.0; n_out];
            let mut max = vec![f64::NEG_INFINITY; n_out];
            for (i, v) in vals.iter().enumerate() {
                let idx = unravel(i, &dims);
                let o = idx
                    .iter()
                    .zip(&out_dims)
                    .fold(0, |acc, (&ix, &od)| acc * od + if od == 1 { 0 } else { ix });
                sum[o] += v;
                max[o] = max[o].max(*v);
            }
            let red_i: Vec<i64> = red.iter().map(|&d| d as i64).collect();
            let s = x.sum(&red_i, true).unwrap().to_f64_vec().unwrap();
            let m = x.amax(&red_i, true).unwrap().to_f64_vec().unwrap();
            for k in 0..n_out {
                assert!(
                    (s[k] - sum[k]).abs() < 1e-12,
                    "sum over {red:?} of {:?}",
                    x.dims()
                );
                assert_eq!(m[k], max[k], "max over {red:?}");
            }
        }
    }
}

#[test]
fn matmul_matches_naive_for_transposed_and_broadcast_operands() {
    manual_seed(11);
    for &(m, k, n) in &[(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 64, 64)] {
        let a = randn(&[k, m]).t().unwrap(); // transposed view
        let b = randn(&[k, n]);
        let c = a.matmul(&b).unwrap().to_f64_vec().unwrap();
        let (av, bv) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| av[i * k + p] * bv[p * n + j]).sum();
                assert!(
                    (c[i * n + j] - want).abs() < 1e-10,
                    "({m},{k},{n}) at ({i},{j})"
                );
            }
        }
    }
    // a batch broadcast against a single matrix
    let a = randn(&[4, 3, 2]);
    let b = randn(&[2, 5]);
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.dims(), &[4, 3, 5]);
    let c1 = a.select(0usize, 2).unwrap().matmul(&b).unwrap();
    assert_eq!(
        c.select(0usize, 2).unwrap().to_f64_vec().unwrap(),
        c1.to_f64_vec().unwrap()
    );
}

/// Products big enough to be cut in two for the spinning helper (`cpu/spin.rs`): along rows,
/// along columns, and the `x @ W^T` path that computes `(W @ x^T)^T`, against a naive f64 loop.
#[test]
fn split_matmuls_match_a_naive_product() {
    manual_seed(13);
    for &(m, k, n, transposed_b) in &[
        (300, 200, 100, false),
        (100, 300, 500, false),
        (40, 256, 1024, true),
        (33, 700, 129, false),
    ] {
        let a = Tensor::randn([m, k], DType::F32, Device::Cpu).unwrap();
        let b = if transposed_b {
            Tensor::randn([n, k], DType::F32, Device::Cpu)
                .unwrap()
                .t()
                .unwrap()
        } else {
            Tensor::randn([k, n], DType::F32, Device::Cpu).unwrap()
        };
        let got = a.matmul(&b).unwrap().to_f64_vec().unwrap();
        let (av, bv) = (
            a.to_f64_vec().unwrap(),
            b.contiguous().unwrap().to_f64_vec().unwrap(),
        );
        let mut worst = 0.0f64;
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| av[i * k + p] * bv[p * n + j]).sum();
                worst = worst.max((got[i * n + j] - want).abs());
            }
        }
        assert!(worst < 1e-3, "{m}x{k}x{n}: {worst}");
    }
}

#[test]
fn f32_matmul_large_enough_to_thread_is_accurate() {
    manual_seed(12);
    let a = Tensor::randn([300, 200], DType::F32, Device::Cpu).unwrap();
    let b = Tensor::randn([200, 100], DType::F32, Device::Cpu).unwrap();
    let c = a.matmul(&b).unwrap().to_dtype(DType::F64).unwrap();
    let c64 = a
        .to_dtype(DType::F64)
        .unwrap()
        .matmul(&b.to_dtype(DType::F64).unwrap())
        .unwrap();
    let diff = c
        .sub(&c64)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .item()
        .unwrap();
    assert!(diff < 1e-3, "{diff}");
}

#[test]
fn broadcasting_binary_ops_follow_numpy() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3, 1], Device::Cpu).unwrap();
    let b = Tensor::from_vec(vec![10.0f32, 20.0], [2], Device::Cpu).unwrap();
    let c = a.add(&b).unwrap();
    assert_eq!(c.dims(), &[3, 2]);
    assert_eq!(
        c.to_vec::<f32>().unwrap(),
        vec![11.0, 21.0, 12.0, 22.0, 13.0, 23.0]
    );
    let err = a
        .add(&Tensor::ones([2, 4], DType::F32, Device::Cpu).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("add") && err.contains("[3, 1]") && err.contains("[2, 4]"),
        "{err}"
    );
}

#[test]
fn type_promotion() {
    let i = Tensor::from_vec(vec![1i64, 2], [2], Device::Cpu).unwrap();
    let f = Tensor::from_vec(vec![0.5f32, 0.5], [2], Device::Cpu).unwrap();
    assert_eq!(i.add(&f).unwrap().dtype(), DType::F32);
    assert_eq!(i.div(&i).unwrap().dtype(), DType::F32); // true division
    assert_eq!(i.add(&i).unwrap().dtype(), DType::I64);
    assert_eq!(i.mul_scalar(1.5).unwrap().dtype(), DType::F32);
}

#[test]
fn views_share_storage_and_copy_when_needed() {
    let x = randn(&[2, 3, 4]);
    let v = x.reshape([6, 4]).unwrap();
    assert!(v.shares_storage(&x));
    let t = x.transpose(1i64, 2).unwrap();
    assert!(t.shares_storage(&x) && !t.is_contiguous());
    let r = t.reshape([2, 12]).unwrap(); // needs a copy
    assert!(!r.shares_storage(&x));
    assert!(t.view(&[2, 12]).is_err());
    let e = Tensor::ones([3, 1], DType::F32, Device::Cpu)
        .unwrap()
        .expand(&[2, 3, 5])
        .unwrap();
    assert_eq!(e.strides(), &[0, 1, 0]);
    assert_eq!(e.sum_all().unwrap().item().unwrap(), 30.0);
}

#[test]
fn softmax_rows_sum_to_one_and_survive_large_inputs() {
    let x = Tensor::from_vec(
        vec![1000.0f32, 1001.0, 1002.0, -1000.0, 0.0, 1000.0],
        [2, 3],
        Device::Cpu,
    )
    .unwrap();
    let s = x.softmax(1i64).unwrap().to_vec::<f32>().unwrap();
    assert!(s.iter().all(|v| v.is_finite()));
    assert!(((s[0] + s[1] + s[2]) - 1.0).abs() < 1e-6);
    let l = x.log_softmax(1i64).unwrap().to_vec::<f32>().unwrap();
    assert!((l[2] - (-0.40760596)).abs() < 1e-5, "{l:?}"); // log_softmax([0,1,2])[2], by hand
}

#[test]
fn sum_of_ten_million_tenths_in_f32() {
    let x = Tensor::full([10_000_000], 0.1, DType::F32, Device::Cpu).unwrap();
    let s = x.sum_all().unwrap().item().unwrap();
    assert!(((s - 1e6) / 1e6).abs() < 1e-5, "{s}");
}

/// Direct (naive) 2-d convolution as the reference for the unfold + GEMM path.
#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f64],
    xd: [usize; 4],
    w: &[f64],
    wd: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    groups: usize,
) -> (Vec<f64>, [usize; 4]) {
    let [n, c, h, ww] = xd;
    let [o, cg, kh, kw] = wd;
    let oh = (h + 2 * pad.0 - dil.0 * (kh - 1) - 1) / stride.0 + 1;
    let ow = (ww + 2 * pad.1 - dil.1 * (kw - 1) - 1) / stride.1 + 1;
    let og = o / groups;
    let mut out = vec![0.0; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = 0.0;
                    for ic in 0..cg {
                        let cin = g * cg + ic;
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let hi = (i * stride.0 + ki * dil.0) as isize - pad.0 as isize;
                                let wj = (j * stride.1 + kj * dil.1) as isize - pad.1 as isize;
                                if hi >= 0 && wj >= 0 && (hi as usize) < h && (wj as usize) < ww {
                                    s += x[((b * c + cin) * h + hi as usize) * ww + wj as usize]
                                        * w[((oc * cg + ic) * kh + ki) * kw + kj];
                                }
                            }
                        }
                    }
                    out[((b * o + oc) * oh + i) * ow + j] = s;
                }
            }
        }
    }
    (out, [n, o, oh, ow])
}

#[test]
fn conv2d_matches_direct_convolution() {
    use backprop::nn::conv::{conv2d, Padding};
    manual_seed(13);
    for &(xd, wd, stride, pad, dil, groups) in &[
        ([2, 3, 7, 6], [4, 3, 3, 3], (1, 1), (1, 1), (1, 1), 1),
        ([1, 4, 9, 8], [6, 2, 3, 2], (2, 1), (0, 1), (1, 2), 2),
        ([3, 1, 28, 28], [6, 1, 5, 5], (1, 1), (2, 2), (1, 1), 1),
    ] {
        let x = randn(&xd);
        let w = randn(&wd);
        let got = conv2d(
            &x,
            &w,
            None,
            stride,
            Padding::Explicit(pad.0, pad.1),
            dil,
            groups,
        )
        .unwrap();
        let (want, od) = naive_conv(
            &x.to_f64_vec().unwrap(),
            xd,
            &w.to_f64_vec().unwrap(),
            wd,
            stride,
            pad,
            dil,
            groups,
        );
        assert_eq!(got.dims(), &od);
        for (a, b) in got.to_f64_vec().unwrap().iter().zip(&want) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }
}

/// argmax/argmin along each dim (the reduced axis innermost or not, which take different
/// kernels), with NaNs placed so that "NaN wins, the first NaN stays" is exercised, and min/max/sum
/// over a pooling-window axis of a tensor large enough to run the row kernels in parallel.
#[test]
fn arg_reductions_and_window_axis_reductions_match_naive() {
    manual_seed(11);
    let dims = [6usize, 5, 7];
    let mut vals = randn(&dims).to_f64_vec().unwrap();
    vals[17] = f64::NAN;
    vals[17 + 35] = f64::NAN; // same (j, k) one step along dim 0: the first must be reported
    vals[40] = f64::NAN;
    let x = Tensor::from_f64s(vals.clone(), dims.to_vec().into(), DType::F32, Device::Cpu).unwrap();
    let xv = x.to_f64_vec().unwrap();
    for d in 0..3 {
        for max in [true, false] {
            let got = if max {
                x.argmax(Some(d as i64), false)
            } else {
                x.argmin(Some(d as i64), false)
            };
            let got = got.unwrap().to_vec::<i64>().unwrap();
            let mut out_dims = dims.to_vec();
            out_dims.remove(d);
            for (o, &g) in got.iter().enumerate() {
                let oi = unravel(o, &out_dims);
                let at = |i: usize| {
                    let mut idx = oi.clone();
                    idx.insert(d, i);
                    xv[(idx[0] * dims[1] + idx[1]) * dims[2] + idx[2]]
                };
                let mut best = 0usize;
                for i in 1..dims[d] {
                    let (v, b) = (at(i), at(best));
                    if !b.is_nan() && (v.is_nan() || (max && v > b) || (!max && v < b)) {
                        best = i;
                    }
                }
                assert_eq!(
                    g as usize,
                    best,
                    "arg{} along {d} at {oi:?}",
                    if max { "max" } else { "min" }
                );
            }
        }
    }
    // [N, C, k, L] as max-pooling builds it, reduced over the window axis k
    let (n, c, k, l) = (16usize, 6, 4, 196);
    let w = randn(&[n, c, k, l]);
    let wf = w.to_dtype(DType::F32).unwrap();
    let v = wf.to_f64_vec().unwrap();
    let s = wf.sum(&[2i64], false).unwrap().to_f64_vec().unwrap();
    let mx = wf.amax(&[2i64], false).unwrap().to_f64_vec().unwrap();
    let mn = wf.amin(&[2i64], false).unwrap().to_f64_vec().unwrap();
    for a in 0..n * c {
        for j in 0..l {
            let col: Vec<f64> = (0..k).map(|i| v[(a * k + i) * l + j]).collect();
            let o = a * l + j;
            assert!((s[o] - col.iter().sum::<f64>()).abs() < 1e-5);
            assert_eq!(mx[o], col.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            assert_eq!(mn[o], col.iter().copied().fold(f64::INFINITY, f64::min));
        }
    }
}
