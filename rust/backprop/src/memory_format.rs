//! Memory formats (`torch.contiguous_format`, `torch.channels_last`...): the order in which a
//! dense tensor's dims are laid out in memory. Values never depend on it; strides, and so the
//! speed of kernels that read along a dim, do. `channels_last` keeps the channels of one pixel
//! together (`N, H, W, C` in memory for an `N, C, H, W` tensor), as image code expects after
//! `x.to(memory_format=torch.channels_last)`.

use crate::{Error, Result, Tensor};

/// A memory format, as PyTorch's `torch.memory_format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryFormat {
    /// Row-major (C) order: the last dim is innermost.
    Contiguous,
    /// `N, H, W, C` order for a rank-4 `N, C, H, W` tensor.
    ChannelsLast,
    /// `N, D, H, W, C` order for a rank-5 `N, C, D, H, W` tensor.
    ChannelsLast3d,
    /// Whatever the input has (for copies: `clone`, `to`, the `*_like` factories).
    Preserve,
}

impl MemoryFormat {
    /// PyTorch's name of the format (`"channels_last"`).
    pub fn name(self) -> &'static str {
        match self {
            MemoryFormat::Contiguous => "contiguous_format",
            MemoryFormat::ChannelsLast => "channels_last",
            MemoryFormat::ChannelsLast3d => "channels_last_3d",
            MemoryFormat::Preserve => "preserve_format",
        }
    }

    /// The dims from outermost to innermost for a tensor of `rank` (`None` for `Preserve`).
    fn order(self, op: &'static str, t: &Tensor) -> Result<Option<Vec<usize>>> {
        let rank = t.rank();
        let (want, order) = match self {
            MemoryFormat::Contiguous => return Ok(Some((0..rank).collect())),
            MemoryFormat::Preserve => return Ok(None),
            MemoryFormat::ChannelsLast => (4, vec![0, 2, 3, 1]),
            MemoryFormat::ChannelsLast3d => (5, vec![0, 2, 3, 4, 1]),
        };
        if rank != want {
            return Err(Error::InvalidShape {
                op,
                shape: t.shape().clone(),
                msg: format!(
                    "required rank {want} tensor to use {} format, got a rank {rank} tensor",
                    self.name()
                ),
            });
        }
        Ok(Some(order))
    }
}

impl Tensor {
    /// Whether the strides are dense in `format`'s dim order (dims of extent 1 may have any
    /// stride, as PyTorch's check). A rank other than the format's is `false`, as in PyTorch.
    ///
    /// ```
    /// use backprop::{MemoryFormat, Tensor};
    /// let x = Tensor::zeros([2, 3, 4, 5], backprop::DType::F32, backprop::Device::Cpu)?;
    /// assert!(!x.is_contiguous_in(MemoryFormat::ChannelsLast)?);
    /// let y = x.contiguous_in(MemoryFormat::ChannelsLast)?;
    /// assert_eq!(y.strides(), &[60, 1, 15, 3]);
    /// assert!(y.is_contiguous_in(MemoryFormat::ChannelsLast)?);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn is_contiguous_in(&self, format: MemoryFormat) -> Result<bool> {
        let format = match format {
            MemoryFormat::Preserve => self.suggest_memory_format(),
            f => f,
        };
        let order = match format.order("is_contiguous", self) {
            Ok(o) => o.unwrap_or_default(),
            Err(_) => return Ok(false),
        };
        let dims = self.dims();
        let strides = self.layout().strides();
        let mut expected = 1usize;
        for &d in order.iter().rev() {
            if dims[d] == 1 {
                continue;
            }
            if strides[d] != expected {
                return Ok(false);
            }
            expected *= dims[d];
        }
        Ok(true)
    }

    /// `self` if already dense in `format`'s order, else a copy laid out so (differentiable:
    /// a permuted contiguous copy, viewed back in the original dim order). `Preserve` means
    /// [`Tensor::suggest_memory_format`].
    pub fn contiguous_in(&self, format: MemoryFormat) -> Result<Tensor> {
        let format = match format {
            MemoryFormat::Preserve => self.suggest_memory_format(),
            f => f,
        };
        if format == MemoryFormat::Contiguous {
            return self.contiguous();
        }
        let order = format.order("contiguous", self)?.unwrap_or_default();
        if self.is_contiguous_in(format)? {
            return Ok(self.clone());
        }
        self.copy_in_order(&order)
    }

    /// The format a `Preserve` copy of this tensor takes: channels-last when the strides are
    /// channels-last and not also row-major (a tensor with trivial channel or spatial dims is
    /// both), else contiguous.
    pub fn suggest_memory_format(&self) -> MemoryFormat {
        if self.is_contiguous() {
            return MemoryFormat::Contiguous;
        }
        for f in [MemoryFormat::ChannelsLast, MemoryFormat::ChannelsLast3d] {
            if self.is_contiguous_in(f).unwrap_or(false) {
                return f;
            }
        }
        MemoryFormat::Contiguous
    }

    /// A copy of `self` (always new memory) laid out in `format`, `Preserve` meaning
    /// [`Tensor::suggest_memory_format`].
    pub fn clone_in(&self, format: MemoryFormat) -> Result<Tensor> {
        let format = match format {
            MemoryFormat::Preserve => self.suggest_memory_format(),
            f => f,
        };
        match format {
            MemoryFormat::Contiguous => self.contiguous_copy(),
            f => {
                let order = f.order("clone", self)?.unwrap_or_default();
                self.copy_in_order(&order)
            }
        }
    }

    /// A copy whose memory holds the dims in `order` (outermost first), viewed back in the
    /// original dim order.
    fn copy_in_order(&self, order: &[usize]) -> Result<Tensor> {
        let mut inverse = vec![0usize; order.len()];
        for (i, &d) in order.iter().enumerate() {
            inverse[d] = i;
        }
        self.permute(order)?
            .contiguous_copy()?
            .permute(&inverse[..])
    }
}
