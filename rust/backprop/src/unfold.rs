//! The sliding-window primitives: `unfold` (im2col) and `fold` (col2im).

use crate::op::{Op, Window};
use crate::{Error, Result, Shape, Tensor};

impl Tensor {
    /// `[N, C, H, W]` -> `[N, C*kh*kw, L]`: every `kh x kw` window (with stride, padding and
    /// dilation) as a column; `L` is the number of window positions. Positions outside the input
    /// read `pad_value` (0 for convolution, -inf for max-pooling).
    pub fn unfold(&self, w: Window, pad_value: f64) -> Result<Tensor> {
        if self.rank() != 4 {
            return Err(Error::InvalidShape {
                op: "unfold",
                shape: self.shape().clone(),
                msg: "expected a 4-d input [N, C, H, W]".into(),
            });
        }
        check_window("unfold", &w)?;
        let d = self.dims();
        let (oh, ow) = w.out_hw(d[2], d[3]).ok_or_else(|| Error::InvalidShape {
            op: "unfold",
            shape: self.shape().clone(),
            msg: format!(
                "the {}x{} window (dilation {:?}) does not fit in the input of {}x{} with padding {:?} (or the padded size exceeds the int64 range)",
                w.kernel.0, w.kernel.1, w.dilation, d[2], d[3], w.padding
            ),
        })?;
        let too_big = || Error::InvalidShape {
            op: "unfold",
            shape: self.shape().clone(),
            msg: format!(
                "the output for a {}x{} window with padding {:?} exceeds the int64 range",
                w.kernel.0, w.kernel.1, w.padding
            ),
        };
        let rows = d[1]
            .checked_mul(w.kernel.0)
            .and_then(|r| r.checked_mul(w.kernel.1))
            .ok_or_else(too_big)?;
        let cols = oh.checked_mul(ow).ok_or_else(too_big)?;
        let shape = Shape::new(vec![d[0], rows, cols]);
        shape.check_extents("unfold")?;
        if shape.checked_numel().is_none() {
            return Err(too_big());
        }
        let s = self.storage().unfold(self.layout(), &w, pad_value)?;
        Tensor::from_op(s, shape, Op::Unfold(self.clone(), w, pad_value))
    }

    /// `[N, C*kh*kw, L]` -> `[N, C, H, W]` with `(H, W) = out_hw`: the adjoint of `unfold`,
    /// summing the values of overlapping windows.
    pub fn fold(&self, w: Window, out_hw: (usize, usize)) -> Result<Tensor> {
        check_window("fold", &w)?;
        let k = w
            .kernel
            .0
            .checked_mul(w.kernel.1)
            .ok_or_else(|| Error::invalid("fold", "the kernel size overflows"))?;
        let bad = |msg: String| Error::InvalidShape {
            op: "fold",
            shape: self.shape().clone(),
            msg,
        };
        if self.rank() != 3 {
            return Err(bad("expected a 3-d input [N, C*kh*kw, L]".into()));
        }
        if self.dims()[1] % k != 0 {
            return Err(bad(format!(
                "dim 1 must be divisible by the kernel size {}x{}",
                w.kernel.0, w.kernel.1
            )));
        }
        let (oh, ow) = w
            .out_hw(out_hw.0, out_hw.1)
            .ok_or_else(|| bad(format!("the window does not fit an output of {out_hw:?}")))?;
        if oh.checked_mul(ow) != Some(self.dims()[2]) {
            return Err(bad(format!(
                "expected {oh}x{ow} window positions for an output of {:?}, got {}",
                out_hw,
                self.dims()[2]
            )));
        }
        let shape = Shape::new(vec![self.dims()[0], self.dims()[1] / k, out_hw.0, out_hw.1]);
        shape.check_extents("fold")?;
        let s = self.storage().fold(self.layout(), &w, out_hw)?;
        Tensor::from_op(s, shape, Op::Fold(self.clone(), w, out_hw))
    }
}

fn check_window(op: &'static str, w: &Window) -> Result<()> {
    if w.kernel.0 == 0
        || w.kernel.1 == 0
        || w.stride.0 == 0
        || w.stride.1 == 0
        || w.dilation.0 == 0
        || w.dilation.1 == 0
    {
        return Err(Error::invalid(
            op,
            format!("kernel, stride and dilation must be positive, got {w:?}"),
        ));
    }
    Ok(())
}
