//! PyTorch-style printing: `tensor([[1.0000, 2.0000]], requires_grad=True)`.

use crate::{DType, Device, Tensor};
use std::fmt;

/// Above this many elements only the edges of each dim are printed.
const SUMMARIZE_OVER: usize = 1000;
const EDGE: usize = 3;

struct Fmt {
    dtype: DType,
    sci: bool,
    int_valued: bool,
    width: usize,
}

impl Fmt {
    fn new(dtype: DType, vals: &[f64]) -> Fmt {
        let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        let int_valued = finite.iter().all(|v| v.fract() == 0.0);
        let max = finite.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let min_nz = finite
            .iter()
            .filter(|v| **v != 0.0)
            .fold(f64::INFINITY, |a, v| a.min(v.abs()));
        let sci = dtype.is_float()
            && !finite.is_empty()
            && (max >= 1e8
                || (min_nz < 1e-4 && !int_valued)
                || (max / min_nz.max(1e-300) > 1e3 && max >= 1e3 && !int_valued));
        let mut f = Fmt {
            dtype,
            sci,
            int_valued,
            width: 0,
        };
        f.width = vals.iter().map(|&v| f.one(v).len()).max().unwrap_or(0);
        f
    }

    fn one(&self, v: f64) -> String {
        match self.dtype {
            DType::Bool => (if v != 0.0 { "True" } else { "False" }).to_string(),
            d if d.is_int() => format!("{}", v as i64),
            _ if v.is_nan() => "nan".into(),
            _ if v.is_infinite() => (if v > 0.0 { "inf" } else { "-inf" }).into(),
            _ if self.sci => format!("{v:.4e}").replace('e', "e+").replace("e+-", "e-"),
            _ if self.int_valued => format!("{v:.0}."),
            _ => format!("{v:.4}"),
        }
    }
}

fn write_dim(
    out: &mut String,
    vals: &[f64],
    dims: &[usize],
    fmt: &Fmt,
    summarize: bool,
    indent: usize,
) {
    if dims.is_empty() {
        out.push_str(&format!("{:>w$}", fmt.one(vals[0]), w = fmt.width));
        return;
    }
    let n = dims[0];
    let inner: usize = dims[1..].iter().product();
    out.push('[');
    let show: Vec<Option<usize>> = if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    for (k, i) in show.iter().enumerate() {
        if k > 0 {
            out.push(',');
            if dims.len() > 1 {
                out.push_str(&"\n".repeat(dims.len() - 1));
                out.push_str(&" ".repeat(indent + 1));
            } else {
                out.push(' ');
            }
        }
        match i {
            Some(i) => write_dim(
                out,
                &vals[i * inner..(i + 1) * inner],
                &dims[1..],
                fmt,
                summarize,
                indent + 1,
            ),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = match self.detach().to_f64_vec() {
            Ok(v) => v,
            Err(e) => return write!(f, "tensor(<unreadable: {e}>)"),
        };
        let summarize = vals.len() > SUMMARIZE_OVER;
        let fmt_vals: Vec<f64> = if summarize {
            vals.iter()
                .take(EDGE * 50)
                .chain(vals.iter().rev().take(EDGE * 50))
                .copied()
                .collect()
        } else {
            vals.clone()
        };
        let fm = Fmt::new(self.dtype(), &fmt_vals);
        let mut body = String::new();
        if self.numel() == 0 {
            body.push_str("[]");
        } else {
            write_dim(
                &mut body,
                &vals,
                self.dims(),
                &fm,
                summarize,
                "tensor(".len(),
            );
        }
        let mut extras = Vec::new();
        if self.numel() == 0 && self.rank() != 1 {
            extras.push(format!("size={:?}", self.dims()));
        }
        if self.device() != Device::Cpu {
            extras.push(format!("device='{}'", self.device()));
        }
        if !matches!(self.dtype(), DType::F32 | DType::I64 | DType::Bool) {
            extras.push(format!("dtype={}", self.dtype()));
        }
        if let Some(name) = self.grad_fn_display_name() {
            extras.push(format!("grad_fn=<{name}>"));
        } else if self.requires_grad() {
            extras.push("requires_grad=True".into());
        }
        write!(f, "tensor({body}")?;
        for e in extras {
            write!(f, ", {e}")?;
        }
        write!(f, ")")
    }
}
