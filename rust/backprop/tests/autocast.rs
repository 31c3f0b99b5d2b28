//! The core's autocast policy, from Rust: listed ops cast, unlisted ones do not, the backward
//! pass never autocasts, the parameter cache follows in-place changes, and regions nest.

use backprop::autocast::{self, Policy};
use backprop::nn::functional as F;
use backprop::{DType, Device, Result, Tensor};

fn randn(dims: &[usize]) -> Result<Tensor> {
    Tensor::randn(dims.to_vec(), DType::F32, Device::Cpu)
}

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.to_dtype(DType::F32)?
        .to_vec::<f32>()?
        .into_iter()
        .map(f32::to_bits)
        .collect())
}

#[test]
fn listed_ops_equal_the_op_on_inputs_cast_by_hand() -> Result<()> {
    let (x, w, b) = (randn(&[4, 6])?, randn(&[3, 6])?, randn(&[3])?);
    let got = {
        let _r = autocast::region(Device::Cpu, DType::BF16)?;
        F::linear(&x, &w, Some(&b))?
    };
    let (xh, wh, bh) = (
        x.to_dtype(DType::BF16)?,
        w.to_dtype(DType::BF16)?,
        b.to_dtype(DType::BF16)?,
    );
    let want = F::linear(&xh, &wh, Some(&bh))?;
    assert_eq!(got.dtype(), DType::BF16);
    assert_eq!(bits(&got)?, bits(&want)?);
    // a float32-list op on lower-precision inputs runs in float32
    let loss = {
        let _r = autocast::region(Device::Cpu, DType::BF16)?;
        backprop::nn::loss::mse_loss(&xh, &xh.neg()?, backprop::nn::loss::Reduction::Mean)?
    };
    assert_eq!(loss.dtype(), DType::F32);
    // unlisted ops and float64 are left alone
    let _r = autocast::region(Device::Cpu, DType::F16)?;
    assert_eq!(x.add(&x)?.dtype(), DType::F32);
    let d = x.to_dtype(DType::F64)?;
    assert_eq!(d.matmul(&d.mt()?)?.dtype(), DType::F64);
    assert_eq!(x.matmul(&x.mt()?)?.dtype(), DType::F16);
    Ok(())
}

#[test]
fn backward_inside_a_region_runs_in_the_forward_dtypes() -> Result<()> {
    let x = randn(&[5, 4])?;
    let w = randn(&[4, 3])?.requires_grad_(true)?;
    let grad_in_region = {
        let _r = autocast::region(Device::Cpu, DType::BF16)?;
        let y = x.matmul(&w)?.to_dtype(DType::F32)?.sum_all()?;
        y.backward()?;
        w.grad().expect("a gradient")
    };
    w.set_grad(None)?;
    let y = x
        .to_dtype(DType::BF16)?
        .matmul(&w.to_dtype(DType::BF16)?)?
        .to_dtype(DType::F32)?
        .sum_all()?;
    y.backward()?;
    let want = w.grad().expect("a gradient");
    assert_eq!(grad_in_region.dtype(), DType::F32);
    assert_eq!(bits(&grad_in_region)?, bits(&want)?);
    Ok(())
}

#[test]
fn the_cache_casts_a_weight_once_and_again_after_an_in_place_change() -> Result<()> {
    let w = randn(&[3, 3])?.requires_grad_(true)?;
    let x = randn(&[2, 3])?;
    let _r = autocast::region(Device::Cpu, DType::BF16)?;
    let a = x.matmul(&w)?;
    let _ = x.matmul(&w)?;
    assert_eq!(autocast::cached_casts(), 1);
    {
        let _g = backprop::no_grad();
        w.binary_scalar_(backprop::Scalar::Float(1.0), backprop::op::BinaryOp::Add)?;
    }
    let b = x.matmul(&w)?;
    let want = x.to_dtype(DType::BF16)?.matmul(&w.to_dtype(DType::BF16)?)?;
    assert_eq!(bits(&b)?, bits(&want)?);
    assert_ne!(bits(&a)?, bits(&b)?);
    Ok(())
}

#[test]
fn regions_nest_restore_and_clear_the_cache_at_the_outermost_exit() -> Result<()> {
    let w = randn(&[2, 2])?.requires_grad_(true)?;
    {
        let _outer = autocast::region(Device::Cpu, DType::BF16)?;
        {
            let inner = autocast::enter(Device::Cpu, false, DType::F16, true)?;
            assert!(!autocast::is_enabled(Device::Cpu));
            assert_eq!(w.matmul(&w)?.dtype(), DType::F32);
            autocast::exit(inner);
        }
        assert!(autocast::is_enabled(Device::Cpu));
        assert_eq!(autocast::dtype(Device::Cpu), DType::BF16);
        assert_eq!(w.matmul(&w)?.dtype(), DType::BF16);
        assert_eq!(autocast::cached_casts(), 1);
        // an op body (suspended) does not cast
        let _s = autocast::suspend();
        assert!(autocast::begin(Policy::Lower, Device::Cpu).is_none());
    }
    assert!(!autocast::is_enabled(Device::Cpu));
    assert_eq!(autocast::cached_casts(), 0);
    assert!(autocast::region(Device::Cpu, DType::F32).is_err());
    let gpu = autocast::region(Device::Gpu, DType::F16)
        .err()
        .expect("refused");
    assert!(gpu.to_string().contains("shader-f16"), "{gpu}");
    Ok(())
}
