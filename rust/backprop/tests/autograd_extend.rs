//! The extensible autograd from Rust: custom functions, hooks, the graph as nodes, inference
//! mode. Gradients are checked against values worked out by hand or by finite differences.

use backprop::autograd::{self, apply, BackwardCtx, Function, FunctionCtx, GradFn};
use backprop::{DType, Device, Result, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn leaf(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()], Device::Cpu)
        .unwrap()
        .requires_grad_(true)
        .unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec().unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// P3(x) = (5x^3 - 3x)/2 with its derivative written by hand (PyTorch's tutorial function).
struct Legendre3;
impl Function for Legendre3 {
    fn forward(&self, ctx: &mut FunctionCtx, x: &[Tensor]) -> Result<Vec<Tensor>> {
        ctx.save_for_backward(&x[..1]);
        let x = &x[0];
        Ok(vec![x
            .mul(x)?
            .mul(x)?
            .mul_scalar(5.0)?
            .sub(&x.mul_scalar(3.0)?)?
            .mul_scalar(0.5)?])
    }
    fn backward(&self, ctx: &BackwardCtx, g: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let x = ctx.saved_tensors()[0].clone().unwrap();
        // written with differentiable ops, so it is itself differentiable
        let d = x.mul(&x)?.mul_scalar(7.5)?.add_scalar(-1.5)?;
        Ok(vec![Some(g[0].mul(&d)?)])
    }
}

#[test]
fn custom_function_gradient_and_second_derivative() {
    let xs = [-0.7, 0.2, 1.3];
    let x = leaf(&xs);
    let y = apply(Legendre3, std::slice::from_ref(&x))
        .unwrap()
        .remove(0);
    assert_eq!(y.grad_fn().unwrap().name(), "Legendre3Backward");
    close(
        &vals(&y),
        &xs.map(|v| (5.0 * v * v * v - 3.0 * v) / 2.0),
        1e-12,
    );
    // first derivative through grad(create_graph), then the second through it
    let (g,) = {
        let g = autograd::grad(
            &[y.sum_all().unwrap()],
            std::slice::from_ref(&x),
            None,
            None,
            true,
            false,
        )
        .unwrap();
        (g[0].clone().unwrap(),)
    };
    close(&vals(&g), &xs.map(|v| 7.5 * v * v - 1.5), 1e-12);
    g.sum_all().unwrap().backward().unwrap();
    close(&vals(&x.grad().unwrap()), &xs.map(|v| 15.0 * v), 1e-12);
}

/// Two outputs (sum and product of two inputs) and a non-differentiable third (a mask).
struct SumProd;
impl Function for SumProd {
    fn forward(&self, ctx: &mut FunctionCtx, x: &[Tensor]) -> Result<Vec<Tensor>> {
        ctx.save_for_backward(x);
        let mask = x[0].gt(&x[1])?;
        ctx.mark_non_differentiable(std::slice::from_ref(&mask));
        Ok(vec![x[0].add(&x[1])?, x[0].mul(&x[1])?, mask])
    }
    fn backward(&self, ctx: &BackwardCtx, g: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let s = ctx.saved_tensors();
        let (a, b) = (s[0].clone().unwrap(), s[1].clone().unwrap());
        assert!(ctx.needs_input_grad(0) && !ctx.needs_input_grad(1));
        Ok(vec![
            Some(g[0].add(&g[1].mul(&b)?)?),
            Some(g[0].add(&g[1].mul(&a)?)?),
        ])
    }
}

#[test]
fn several_outputs_run_the_backward_once() {
    let a = leaf(&[1.0, 4.0]);
    let b = Tensor::from_vec(vec![3.0f64, 2.0], [2], Device::Cpu).unwrap();
    let out = apply(SumProd, &[a.clone(), b.clone()]).unwrap();
    assert!(out[0].requires_grad() && out[1].requires_grad() && !out[2].requires_grad());
    assert_eq!(out[2].dtype(), DType::Bool);
    assert_eq!(out[0].grad_fn().unwrap(), out[1].grad_fn().unwrap());
    // loss = sum(2*s + 3*p): da = 2 + 3b
    let loss = out[0]
        .mul_scalar(2.0)
        .unwrap()
        .add(&out[1].mul_scalar(3.0).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    loss.backward().unwrap();
    close(&vals(&a.grad().unwrap()), &[11.0, 8.0], 1e-12);
    // only the product used: the sum's gradient is materialised as zeros
    let a2 = leaf(&[1.0, 4.0]);
    let out = apply(SumProd, &[a2.clone(), b]).unwrap();
    out[1].sum_all().unwrap().backward().unwrap();
    close(&vals(&a2.grad().unwrap()), &[3.0, 2.0], 1e-12);
}

struct BadCount;
impl Function for BadCount {
    fn forward(&self, _: &mut FunctionCtx, x: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(vec![x[0].mul_scalar(2.0)?])
    }
    fn backward(&self, _: &BackwardCtx, g: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g[0].clone()), None])
    }
}

#[test]
fn wrong_number_of_gradients_is_an_error() {
    let x = leaf(&[1.0]);
    let y = apply(BadCount, &[x]).unwrap().remove(0);
    let e = y.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(
        e.contains("incorrect number of gradients (expected 1, got 2)"),
        "{e}"
    );
}

#[test]
fn saved_value_modified_in_place_is_reported() {
    let x = leaf(&[0.5, 1.5]);
    let h = x.mul_scalar(1.0).unwrap();
    let y = apply(Legendre3, std::slice::from_ref(&h))
        .unwrap()
        .remove(0);
    let _ = h
        .binary_scalar_(backprop::Scalar::Float(1.0), backprop::op::BinaryOp::Add)
        .unwrap();
    let e = y.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(
        e.contains("modified by an inplace operation") && e.contains("Legendre3Backward"),
        "{e}"
    );
}

#[test]
fn tensor_hooks_replace_gradients_in_order_and_can_be_removed() {
    let x = leaf(&[1.0, 2.0]);
    let y = x.mul_scalar(3.0).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s1 = seen.clone();
    let _h1 = y
        .register_hook(move |g| {
            s1.lock().unwrap().push(("first", vals(g)));
            Ok(Some(g.mul_scalar(2.0)?))
        })
        .unwrap();
    let s2 = seen.clone();
    let h2 = y
        .register_hook(move |g| {
            s2.lock().unwrap().push(("second", vals(g)));
            Ok(None)
        })
        .unwrap();
    y.retain_grad();
    y.sum_all()
        .unwrap()
        .backward_with(None, true, false)
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("first", vec![1.0, 1.0]), ("second", vec![2.0, 2.0])]
    );
    // the retained grad sees the hooks' result; the leaf gets it through the chain rule
    assert_eq!(vals(&y.grad().unwrap()), vec![2.0, 2.0]);
    assert_eq!(vals(&x.grad().unwrap()), vec![6.0, 6.0]);
    h2.remove();
    h2.remove();
    seen.lock().unwrap().clear();
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn hook_changing_the_shape_is_an_error() {
    let x = leaf(&[1.0, 2.0]);
    let _h = x.register_hook(|g| Ok(Some(g.sum_all()?))).unwrap();
    let e = x.mul_scalar(2.0).unwrap().sum_all().unwrap().backward();
    assert!(e.unwrap_err().to_string().contains("changed the size"));
    let c = Tensor::from_vec(vec![1.0f64], [1], Device::Cpu).unwrap();
    assert!(c.register_hook(|_| Ok(None)).is_err());
}

#[test]
fn post_accumulate_hook_sees_the_accumulated_grad() {
    let x = leaf(&[1.0, 2.0]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let _h = x
        .register_post_accumulate_grad_hook(move |t| {
            g2.lock().unwrap().push(vals(&t.grad().unwrap()));
            Ok(())
        })
        .unwrap();
    x.mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    x.mul_scalar(2.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(*got.lock().unwrap(), vec![vec![2.0, 2.0], vec![4.0, 4.0]]);
    let y = x.mul_scalar(2.0).unwrap();
    assert!(y.register_post_accumulate_grad_hook(|_| Ok(())).is_err());
}

#[test]
fn node_hooks_see_inputs_and_outputs_gradients() {
    let x = leaf(&[1.0, 2.0]);
    let y = x.mul_scalar(3.0).unwrap();
    let f = y.grad_fn().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let _pre = f
        .register_prehook(Arc::new(move |gout: &[Option<Tensor>]| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(Some(vec![Some(
                gout[0].as_ref().unwrap().mul_scalar(10.0)?,
            )]))
        }))
        .unwrap();
    let c = calls.clone();
    let _post = f
        .register_hook(Arc::new(
            move |gin: &[Option<Tensor>], gout: &[Option<Tensor>]| {
                c.fetch_add(10, Ordering::SeqCst);
                // the pre-hook's replacement is what the rule saw
                assert_eq!(vals(gout[0].as_ref().unwrap()), vec![10.0, 10.0]);
                assert_eq!(vals(gin[0].as_ref().unwrap()), vec![30.0, 30.0]);
                Ok(None)
            },
        ))
        .unwrap();
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 11);
    assert_eq!(vals(&x.grad().unwrap()), vec![30.0, 30.0]);
}

/// Walks `next_functions` from the loss, as torchviz does, listing node names depth first.
fn walk(f: &GradFn, seen: &mut Vec<GradFn>, names: &mut Vec<String>) {
    if seen.contains(f) {
        return;
    }
    seen.push(f.clone());
    names.push(f.name());
    for (next, _) in f.next_functions().unwrap() {
        if let Some(n) = next {
            walk(&n, seen, names);
        }
    }
}

#[test]
fn the_graph_can_be_walked_and_is_freed_after_backward() {
    let w = leaf(&[0.5, -0.5]);
    let x = Tensor::from_vec(vec![1.0f64, 2.0], [2], Device::Cpu).unwrap();
    let loss = w.mul(&x).unwrap().exp().unwrap().sum_all().unwrap();
    let mut names = Vec::new();
    walk(&loss.grad_fn().unwrap(), &mut Vec::new(), &mut names);
    // sum_all is a keepdim sum reshaped to 0-d: composites record their primitives
    assert_eq!(
        names,
        [
            "ReshapeBackward0",
            "SumBackward0",
            "ExpBackward0",
            "MulBackward0",
            "AccumulateGrad"
        ]
    );
    let mut mul = loss.grad_fn().unwrap();
    for _ in 0..3 {
        mul = mul.next_functions().unwrap()[0].0.clone().unwrap();
    }
    assert_eq!(mul.name(), "MulBackward0");
    let edges = mul.next_functions().unwrap();
    assert_eq!(
        edges[0].0.as_ref().unwrap().variable().unwrap().id(),
        w.id()
    );
    assert!(edges[1].0.is_none(), "x needs no gradient");
    loss.backward().unwrap();
    assert!(loss.grad_fn().unwrap().next_functions().is_err());
    assert_eq!(loss.grad_fn().unwrap().name(), "ReshapeBackward0");
}

#[test]
fn inference_tensors_stay_out_of_autograd() {
    let w = leaf(&[1.0, 2.0]);
    let y = {
        let _g = autograd::inference_mode(true);
        assert!(!backprop::is_grad_enabled());
        w.mul_scalar(2.0).unwrap()
    };
    assert!(backprop::is_grad_enabled() && !autograd::is_inference_mode_enabled());
    assert!(y.is_inference() && !y.requires_grad() && !w.is_inference());
    // saved for backward (mul reads y): refused; added (add reads nothing): fine
    assert!(w
        .mul(&y)
        .unwrap_err()
        .to_string()
        .contains("inference tensors"));
    let z = w.add(&y).unwrap();
    z.sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&w.grad().unwrap()), vec![1.0, 1.0]);
    assert!(y
        .binary_scalar_(backprop::Scalar::Float(1.0), backprop::op::BinaryOp::Add)
        .is_err());
    assert!(y.requires_grad_(true).is_err());
    // a view of an inference tensor is one too; a clone is a normal tensor
    assert!(y.reshape([2, 1]).unwrap().is_inference());
    let c = y.contiguous_copy().unwrap();
    assert!(!c.is_inference());
    {
        let _g = autograd::inference_mode(true);
        let _ = y
            .binary_scalar_(backprop::Scalar::Float(1.0), backprop::op::BinaryOp::Add)
            .unwrap();
        let _inner = autograd::inference_mode(false);
        assert!(backprop::is_grad_enabled());
    }
}
