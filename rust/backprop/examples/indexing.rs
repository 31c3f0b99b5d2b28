//! NumPy/PyTorch indexing from Rust: basic indices (integers, ranges, new axes, ellipsis) give
//! views, advanced ones (index tensors, bool masks) gather; `index_put` / `index_put_` assign,
//! with gradients flowing to both the tensor and the assigned values.
//!
//! Run with `cargo run --example indexing`.

use backprop::{DType, Device, IndexOp, Indexer, Result, Tensor};

fn main() -> Result<()> {
    let t = Tensor::arange(0.0, 24.0, 1.0, DType::F32, Device::Cpu)?.reshape([2, 3, 4])?;
    println!("t =\n{t}");

    // t[1]: a view of the second matrix (no copy)
    let m = t.i(1)?;
    println!("t[1] =\n{m}  (shares t's memory: {})", m.shares_storage(&t));

    // t[:, 1:3, -1]: ranges and negative positions
    let s = t.i((.., 1..3, -1))?;
    println!("t[:, 1:3, -1] =\n{s}");

    // t[None, ..., ::2]: a new axis, an ellipsis and a step (an explicit Indexer)
    let every_other = Indexer::Slice {
        start: None,
        stop: None,
        step: 2,
    };
    let v = t.index(&[Indexer::NewAxis, Indexer::Ellipsis, every_other])?;
    println!("t[None, ..., ::2] has shape {}", v.shape());

    // advanced indexing: t[[1, 0], :, [3, 0]] (non-adjacent index tensors: their dim goes first)
    let rows = Tensor::from_vec(vec![1i64, 0], [2], Device::Cpu)?;
    let cols = Tensor::from_vec(vec![3i64, 0], [2], Device::Cpu)?;
    let g = t.index(&[(&rows).into(), Indexer::full(), (&cols).into()])?;
    println!("t[[1, 0], :, [3, 0]] =\n{g}");

    // a bool mask: the elements above 20
    let mask = t.gt_scalar(20.0)?;
    println!("t[t > 20] = {}", t.index(&[mask.clone().into()])?);

    // assignment with gradients: y = x with row 0 replaced by v
    let x = Tensor::ones([3, 2], DType::F32, Device::Cpu)?.requires_grad_(true)?;
    let val = Tensor::from_vec(vec![5.0f32, 7.0], [2], Device::Cpu)?.requires_grad_(true)?;
    let y = x.index_put(&[0.into()], &val, false)?;
    y.mul(&y)?.sum_all()?.backward()?;
    println!("y = {y}");
    println!("dL/dx = {} (the replaced row gets none)", x.grad().unwrap());
    println!("dL/dv = {}", val.grad().unwrap());

    // in place, as Python's t[mask] = 0
    let z = t.contiguous_copy()?;
    let z = z.index_put_(
        &[mask.into()],
        &Tensor::scalar(0.0, DType::F32, Device::Cpu)?,
        false,
    )?;
    println!("after z[z > 20] = 0, max = {}", z.max_all()?);
    Ok(())
}
