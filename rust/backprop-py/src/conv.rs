//! Glue for the convolution family (`backprop::nn::conv`, `Tensor::unfold/fold`), with
//! PyTorch's argument spellings: ints or pairs, `padding="same"|"valid"`.

use crate::errors::IntoPy;
use crate::tensor::{work, wrap, PyTensor};
use backprop::nn::conv::{self, PadMode, Padding};
use backprop::op::Window;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

/// An int or a pair of ints.
fn pair(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(usize, usize)> {
    if let Ok(v) = obj.extract::<usize>() {
        return Ok((v, v));
    }
    if let Ok((a, b)) = obj.extract::<(usize, usize)>() {
        return Ok((a, b));
    }
    // a list as well as a tuple (`F.max_pool2d(x, [2, 2])`, ATen's `int[2]` takes both)
    if let Ok(v) = obj.extract::<Vec<usize>>() {
        match v[..] {
            [a] => return Ok((a, a)),
            [a, b] => return Ok((a, b)),
            _ => {}
        }
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a non-negative int or a pair of them, got {}",
        obj.repr()?
    )))
}

fn opt_pair(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<(usize, usize)>> {
    match obj {
        Some(o) if !o.is_none() => pair(o, what).map(Some),
        _ => Ok(None),
    }
}

fn inner(t: Option<&PyTensor>) -> Option<backprop::Tensor> {
    t.map(|t| t.tensor().clone())
}

#[pyfunction]
#[pyo3(signature = (input, weight, bias=None, stride=None, padding=None, dilation=None, groups=1))]
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    py: Python<'_>,
    input: &PyTensor,
    weight: &PyTensor,
    bias: Option<&PyTensor>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
    groups: usize,
) -> PyResult<PyTensor> {
    let pad = match padding {
        Some(p) if p.is_instance_of::<PyString>() => match p.extract::<String>()?.as_str() {
            "same" => Padding::Same,
            "valid" => Padding::Explicit(0, 0),
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid padding string '{other}', should be 'same' or 'valid'"
                )))
            }
        },
        other => {
            let (a, b) = opt_pair(other, "padding")?.unwrap_or((0, 0));
            Padding::Explicit(a, b)
        }
    };
    let stride = opt_pair(stride, "stride")?.unwrap_or((1, 1));
    let dilation = opt_pair(dilation, "dilation")?.unwrap_or((1, 1));
    let (x, w, b) = (&input.tensor(), &weight.tensor(), inner(bias));
    let r = work(py, x.numel() * w.numel(), || {
        conv::conv2d(x, w, b.as_ref(), stride, pad, dilation, groups)
    });
    Ok(wrap(r.py()?))
}

#[pyfunction]
#[pyo3(signature = (input, weight, bias=None, stride=None, padding=None, output_padding=None, groups=1, dilation=None))]
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    py: Python<'_>,
    input: &PyTensor,
    weight: &PyTensor,
    bias: Option<&PyTensor>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    output_padding: Option<&Bound<'_, PyAny>>,
    groups: usize,
    dilation: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let stride = opt_pair(stride, "stride")?.unwrap_or((1, 1));
    let padding = opt_pair(padding, "padding")?.unwrap_or((0, 0));
    let output_padding = opt_pair(output_padding, "output_padding")?.unwrap_or((0, 0));
    let dilation = opt_pair(dilation, "dilation")?.unwrap_or((1, 1));
    let (x, w, b) = (&input.tensor(), &weight.tensor(), inner(bias));
    let r = work(py, x.numel() * w.numel(), || {
        conv::conv_transpose2d(
            x,
            w,
            b.as_ref(),
            stride,
            padding,
            output_padding,
            groups,
            dilation,
        )
    });
    Ok(wrap(r.py()?))
}

#[pyfunction]
#[pyo3(signature = (input, kernel_size, stride=None, padding=None, dilation=None, ceil_mode=false, return_indices=false))]
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d(
    py: Python<'_>,
    input: &PyTensor,
    kernel_size: &Bound<'_, PyAny>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
    ceil_mode: bool,
    return_indices: bool,
) -> PyResult<Py<PyAny>> {
    let k = pair(kernel_size, "kernel_size")?;
    let stride = opt_pair(stride, "stride")?;
    let padding = opt_pair(padding, "padding")?.unwrap_or((0, 0));
    let dilation = opt_pair(dilation, "dilation")?.unwrap_or((1, 1));
    let x = &input.tensor();
    let (out, idx) = work(py, x.numel(), || {
        conv::max_pool2d(x, k, stride, padding, dilation, ceil_mode, return_indices)
    })
    .py()?;
    let out = Bound::new(py, wrap(out))?.into_any();
    match idx {
        Some(i) => Ok((out, wrap(i)).into_pyobject(py)?.into_any().unbind()),
        None => Ok(out.unbind()),
    }
}

#[pyfunction]
#[pyo3(signature = (input, kernel_size, stride=None, padding=None, ceil_mode=false, count_include_pad=true, divisor_override=None))]
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(
    py: Python<'_>,
    input: &PyTensor,
    kernel_size: &Bound<'_, PyAny>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<f64>,
) -> PyResult<PyTensor> {
    let k = pair(kernel_size, "kernel_size")?;
    let stride = opt_pair(stride, "stride")?;
    let padding = opt_pair(padding, "padding")?.unwrap_or((0, 0));
    let x = &input.tensor();
    Ok(wrap(
        work(py, x.numel(), || {
            conv::avg_pool2d(
                x,
                k,
                stride,
                padding,
                ceil_mode,
                count_include_pad,
                divisor_override,
            )
        })
        .py()?,
    ))
}

#[pyfunction]
pub fn adaptive_avg_pool2d(
    py: Python<'_>,
    input: &PyTensor,
    output_size: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let o = pair(output_size, "output_size")?;
    let x = &input.tensor();
    Ok(wrap(
        work(py, x.numel(), || conv::adaptive_avg_pool2d(x, o)).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, pad, mode="constant", value=None))]
pub fn pad(
    input: &PyTensor,
    pad: Vec<usize>,
    mode: &str,
    value: Option<f64>,
) -> PyResult<PyTensor> {
    let m = match mode {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        other => {
            return Err(PyValueError::new_err(format!(
                "unsupported padding mode '{other}' (constant, reflect or replicate)"
            )))
        }
    };
    Ok(wrap(
        conv::pad(&input.tensor(), &pad, m, value.unwrap_or(0.0)).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, kernel_size, dilation=None, padding=None, stride=None))]
pub fn unfold(
    input: &PyTensor,
    kernel_size: &Bound<'_, PyAny>,
    dilation: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    stride: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let w = Window {
        kernel: pair(kernel_size, "kernel_size")?,
        stride: opt_pair(stride, "stride")?.unwrap_or((1, 1)),
        padding: opt_pair(padding, "padding")?.unwrap_or((0, 0)),
        dilation: opt_pair(dilation, "dilation")?.unwrap_or((1, 1)),
    };
    Ok(wrap(conv::unfold(&input.tensor(), w).py()?))
}

#[pyfunction]
#[pyo3(signature = (input, output_size, kernel_size, dilation=None, padding=None, stride=None))]
pub fn fold(
    input: &PyTensor,
    output_size: &Bound<'_, PyAny>,
    kernel_size: &Bound<'_, PyAny>,
    dilation: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    stride: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let w = Window {
        kernel: pair(kernel_size, "kernel_size")?,
        stride: opt_pair(stride, "stride")?.unwrap_or((1, 1)),
        padding: opt_pair(padding, "padding")?.unwrap_or((0, 0)),
        dilation: opt_pair(dilation, "dilation")?.unwrap_or((1, 1)),
    };
    Ok(wrap(
        conv::fold(&input.tensor(), w, pair(output_size, "output_size")?).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, p=0.5, training=true))]
pub fn dropout2d(input: &PyTensor, p: f64, training: bool) -> PyResult<PyTensor> {
    Ok(wrap(conv::dropout2d(&input.tensor(), p, training).py()?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => { $( m.add_function(wrap_pyfunction!($f, m)?)?; )* };
    }
    add!(
        conv2d,
        conv_transpose2d,
        max_pool2d,
        avg_pool2d,
        adaptive_avg_pool2d,
        pad,
        unfold,
        fold,
        dropout2d
    );
    Ok(())
}
