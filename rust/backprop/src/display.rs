//! PyTorch-style printing: `tensor([[1.0000, 2.0000]], requires_grad=True)`, character for
//! character what `torch`'s `repr` prints for the same values and print options: one number format
//! per tensor chosen from its nonzero finite values (integers, fixed or scientific), rows wrapped at
//! the line width, large tensors summarised by their edges.
//!
//! The options are process-wide, as `torch.set_printoptions`: [`set_print_options`].

use crate::{DType, Tensor};
use std::fmt;
use std::sync::RwLock;

/// How tensors print (`torch.set_printoptions`'s fields).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrintOptions {
    /// Digits after the decimal point (fixed) or of the mantissa (scientific).
    pub precision: usize,
    /// Above this many elements only `edgeitems` at each end of every dim are printed
    /// (`f64::INFINITY`: never summarise).
    pub threshold: f64,
    /// Elements kept at each end of a dim when summarising.
    pub edgeitems: usize,
    /// Characters per line before a row wraps.
    pub linewidth: usize,
    /// Force scientific notation on (`Some(true)`) or off; `None` chooses per tensor.
    pub sci_mode: Option<bool>,
}

impl PrintOptions {
    /// PyTorch's defaults: precision 4, threshold 1000, 3 edge items, 80 columns.
    pub const DEFAULT: PrintOptions = PrintOptions {
        precision: 4,
        threshold: 1000.0,
        edgeitems: 3,
        linewidth: 80,
        sci_mode: None,
    };
}

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions::DEFAULT
    }
}

static OPTIONS: RwLock<PrintOptions> = RwLock::new(PrintOptions::DEFAULT);

/// The current print options.
///
/// ```
/// assert_eq!(backprop::print_options().precision, 4);
/// ```
pub fn print_options() -> PrintOptions {
    *OPTIONS.read().unwrap_or_else(|e| e.into_inner())
}

/// Sets the print options for every tensor printed afterwards, process-wide.
///
/// ```
/// use backprop::{print_options, set_print_options, Device, Tensor};
/// let old = print_options();
/// set_print_options(backprop::PrintOptions { precision: 2, ..old });
/// let t = Tensor::from_vec(vec![1.2345f32], [1], Device::Cpu)?;
/// assert_eq!(t.to_string(), "tensor([1.23])");
/// set_print_options(old);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn set_print_options(options: PrintOptions) {
    *OPTIONS.write().unwrap_or_else(|e| e.into_inner()) = options;
}

/// `{v:.{p}e}` as Python writes it: a signed exponent of at least two digits (`1.5000e-07`);
/// Rust's `{:e}` writes `1.5e-7`.
fn python_sci(v: f64, precision: usize) -> String {
    if !v.is_finite() {
        return python_special(v);
    }
    let s = format!("{v:.precision$e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn python_special(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// One number format for a whole tensor, chosen as PyTorch's `_Formatter` does.
struct Formatter {
    floating: bool,
    dtype: DType,
    int_mode: bool,
    sci_mode: bool,
    precision: usize,
    width: usize,
}

impl Formatter {
    fn new(dtype: DType, vals: &[f64], opts: &PrintOptions) -> Formatter {
        let mut f = Formatter {
            floating: dtype.is_float(),
            dtype,
            int_mode: true,
            sci_mode: false,
            precision: opts.precision,
            width: 1,
        };
        if !f.floating {
            f.width = vals
                .iter()
                .map(|&v| f.format_raw(v).len())
                .fold(1, usize::max);
            return f;
        }
        let nz: Vec<f64> = vals
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v != 0.0)
            .collect();
        if nz.is_empty() {
            return f;
        }
        let max = nz.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let min = nz.iter().fold(f64::INFINITY, |a, v| a.min(v.abs()));
        f.int_mode = nz.iter().all(|v| *v == v.ceil());
        f.sci_mode = max / min > 1000.0 || max > 1.0e8 || min < 1.0e-4;
        // the width comes from the nonzero finite values only, in the mode chosen for them;
        // zeros, inf and nan are padded to it. A forced `sci_mode` changes the notation but not
        // the width, as in PyTorch (whose formatter measures before it applies the option).
        f.width = nz
            .iter()
            .map(|&v| f.format_raw(v).len())
            .fold(1, usize::max);
        if let Some(forced) = opts.sci_mode {
            f.sci_mode = forced;
        }
        f
    }

    fn format_raw(&self, v: f64) -> String {
        if !self.floating {
            return match self.dtype {
                DType::Bool => (if v != 0.0 { "True" } else { "False" }).to_string(),
                _ => format!("{}", v as i64),
            };
        }
        let p = self.precision;
        if self.sci_mode {
            python_sci(v, p)
        } else if self.int_mode {
            if v.is_finite() {
                format!("{v:.0}.")
            } else {
                python_special(v)
            }
        } else if v.is_finite() {
            format!("{v:.p$}")
        } else {
            python_special(v)
        }
    }

    fn format(&self, v: f64) -> String {
        format!("{:>w$}", self.format_raw(v), w = self.width)
    }
}

/// The values PyTorch's formatter sees when summarising: `edge` items at each end of every
/// dim longer than `2 * edge`.
fn summarized(vals: &[f64], dims: &[usize], edge: usize, out: &mut Vec<f64>) {
    if dims.is_empty() {
        out.push(vals[0]);
        return;
    }
    let n = dims[0];
    let inner: usize = dims[1..].iter().product();
    let mut take = |i: usize| summarized(&vals[i * inner..(i + 1) * inner], &dims[1..], edge, out);
    if n > 2 * edge {
        (0..edge).chain(n - edge..n).for_each(&mut take);
    } else {
        (0..n).for_each(&mut take);
    }
}

struct Printer<'a> {
    fmt: &'a Formatter,
    opts: &'a PrintOptions,
    summarize: bool,
}

impl Printer<'_> {
    fn tensor(&self, vals: &[f64], dims: &[usize], indent: usize) -> String {
        match dims.len() {
            0 => self.fmt.format(vals[0]),
            1 => self.vector(vals, dims[0], indent),
            _ => {
                let n = dims[0];
                let inner: usize = dims[1..].iter().product();
                let edge = self.opts.edgeitems;
                let slice = |i: usize| {
                    self.tensor(&vals[i * inner..(i + 1) * inner], &dims[1..], indent + 1)
                };
                let slices: Vec<String> = if self.summarize && n > 2 * edge {
                    (0..edge)
                        .map(slice)
                        .chain(std::iter::once("...".to_string()))
                        .chain((n - edge..n).map(slice))
                        .collect()
                } else {
                    (0..n).map(slice).collect()
                };
                let sep = format!(",{}{}", "\n".repeat(dims.len() - 1), " ".repeat(indent + 1));
                format!("[{}]", slices.join(&sep))
            }
        }
    }

    fn vector(&self, vals: &[f64], n: usize, indent: usize) -> String {
        let edge = self.opts.edgeitems;
        let element = self.fmt.width + 2;
        let per_line = (self.opts.linewidth.saturating_sub(indent) / element).max(1);
        let data: Vec<String> = if self.summarize && edge == 0 {
            vec!["...".into()]
        } else if self.summarize && n > 2 * edge {
            vals[..edge]
                .iter()
                .map(|&v| self.fmt.format(v))
                .chain(std::iter::once(" ...".to_string()))
                .chain(vals[n - edge..n].iter().map(|&v| self.fmt.format(v)))
                .collect()
        } else {
            vals[..n].iter().map(|&v| self.fmt.format(v)).collect()
        };
        let lines: Vec<String> = data.chunks(per_line).map(|c| c.join(", ")).collect();
        format!(
            "[{}]",
            lines.join(&format!(",\n{}", " ".repeat(indent + 1)))
        )
    }
}

/// Appends `, suffix` to the string, wrapping before a suffix that would pass the line width
/// (PyTorch's `_add_suffixes`).
fn add_suffixes(mut s: String, suffixes: &[String], indent: usize, linewidth: usize) -> String {
    // PyTorch's count: characters after the last newline, plus one (plus two with no newline)
    let mut last = s.len() + 1 - s.rfind('\n').map_or(0, |i| i + 1) + 1;
    for suffix in suffixes {
        if last + suffix.len() + 2 > linewidth {
            s.push_str(&format!(",\n{}{suffix}", " ".repeat(indent)));
            last = indent + suffix.len();
        } else {
            s.push_str(&format!(", {suffix}"));
            last += suffix.len() + 2;
        }
    }
    s.push(')');
    s
}

fn shape_tuple(dims: &[usize]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = match self.detach().to_f64_vec() {
            Ok(v) => v,
            Err(e) => return write!(f, "tensor(<unreadable: {e}>)"),
        };
        let opts = print_options();
        let prefix = "tensor(";
        let indent = prefix.len();
        let dims = self.dims();
        let mut suffixes = Vec::new();
        if self.device() != crate::default_device() {
            suffixes.push(format!("device='{}'", self.device()));
        }
        let default_dtype = self.dtype() == crate::default_float();
        let body = if self.numel() == 0 {
            if self.rank() != 1 {
                suffixes.push(format!("size={}", shape_tuple(dims)));
            }
            if !default_dtype {
                suffixes.push(format!("dtype={}", self.dtype()));
            }
            "[]".to_string()
        } else {
            let summarize = self.numel() as f64 > opts.threshold;
            if opts.edgeitems == 0 {
                suffixes.push(format!("size={}", shape_tuple(dims)));
            }
            if !(default_dtype || matches!(self.dtype(), DType::I64 | DType::Bool)) {
                suffixes.push(format!("dtype={}", self.dtype()));
            }
            let fmt_vals = if summarize {
                let mut out = Vec::new();
                summarized(&vals, dims, opts.edgeitems, &mut out);
                out
            } else {
                vals.clone()
            };
            let fmt = Formatter::new(self.dtype(), &fmt_vals, &opts);
            let printer = Printer {
                fmt: &fmt,
                opts: &opts,
                summarize,
            };
            printer.tensor(&vals, dims, indent)
        };
        if let Some(name) = self.grad_fn_display_name() {
            suffixes.push(format!("grad_fn=<{name}>"));
        } else if self.requires_grad() {
            suffixes.push("requires_grad=True".into());
        }
        f.write_str(&add_suffixes(
            format!("{prefix}{body}"),
            &suffixes,
            indent,
            opts.linewidth,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_exponents() {
        assert_eq!(python_sci(1.5e-7, 4), "1.5000e-07");
        assert_eq!(python_sci(2.0e3, 4), "2.0000e+03");
        assert_eq!(python_sci(-1.0e123, 2), "-1.00e+123");
        assert_eq!(python_sci(f64::NEG_INFINITY, 4), "-inf");
    }
}
