//! Convolution and pooling layers for Rust users (the Python classes call the same functions).

use super::conv::{self, Padding};
use super::{init, Module};
use crate::{DType, Device, Result, Tensor};

/// 2-d convolution with PyTorch's default initialisation.
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: (usize, usize),
    pub padding: Padding,
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Conv2d {
    /// A `kernel`-sized convolution from `in_channels` to `out_channels` (stride 1, no padding;
    /// set the public fields for other geometries).
    ///
    /// ```
    /// use backprop::nn::{Conv2d, Module};
    /// use backprop::{DType, Device, Tensor};
    /// let conv = Conv2d::new(3, 8, (3, 3), DType::F32, Device::Cpu)?;
    /// let y = conv.forward(&Tensor::zeros([2, 3, 10, 10], DType::F32, Device::Cpu)?)?;
    /// assert_eq!(y.dims(), &[2, 8, 8, 8]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        dtype: DType,
        device: Device,
    ) -> Result<Conv2d> {
        let weight = Tensor::zeros(
            [out_channels, in_channels, kernel.0, kernel.1],
            dtype,
            device,
        )?;
        init::kaiming_uniform_(&weight, 5f64.sqrt(), "fan_in", "leaky_relu")?;
        let fan_in = in_channels * kernel.0 * kernel.1;
        let bound = if fan_in > 0 {
            1.0 / (fan_in as f64).sqrt()
        } else {
            0.0
        };
        let bias = Tensor::zeros([out_channels], dtype, device)?;
        init::uniform_(&bias, -bound, bound)?;
        Ok(Conv2d {
            weight: weight.requires_grad_(true)?,
            bias: Some(bias.requires_grad_(true)?),
            stride: (1, 1),
            padding: Padding::Explicit(0, 0),
            dilation: (1, 1),
            groups: 1,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }
}

/// Max-pooling with a square or rectangular window (stride = window by default).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    pub kernel: (usize, usize),
    pub stride: Option<(usize, usize)>,
    pub padding: (usize, usize),
    /// Round the output size up (partial windows at the end), as PyTorch's `ceil_mode`.
    pub ceil_mode: bool,
}

impl MaxPool2d {
    pub fn new(kernel: (usize, usize)) -> MaxPool2d {
        MaxPool2d {
            kernel,
            stride: None,
            padding: (0, 0),
            ceil_mode: false,
        }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(conv::max_pool2d(
            x,
            self.kernel,
            self.stride,
            self.padding,
            (1, 1),
            self.ceil_mode,
            false,
        )?
        .0)
    }
}

/// Average pooling (padding counts in the divisor, PyTorch's default).
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    pub kernel: (usize, usize),
    pub stride: Option<(usize, usize)>,
    pub padding: (usize, usize),
    /// Round the output size up (partial windows at the end), as PyTorch's `ceil_mode`.
    pub ceil_mode: bool,
}

impl AvgPool2d {
    pub fn new(kernel: (usize, usize)) -> AvgPool2d {
        AvgPool2d {
            kernel,
            stride: None,
            padding: (0, 0),
            ceil_mode: false,
        }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv::avg_pool2d(
            x,
            self.kernel,
            self.stride,
            self.padding,
            self.ceil_mode,
            true,
            None,
        )
    }
}

/// Adaptive average pooling to a fixed output size.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool2d(pub (usize, usize));

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv::adaptive_avg_pool2d(x, self.0)
    }
}
