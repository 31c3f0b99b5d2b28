//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

use super::update::{apply, Rule};
use super::{state_like, Optimizer};
use crate::{Result, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

pub struct Sgd {
    params: Vec<Tensor>,
    pub config: SgdConfig,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(params: Vec<Tensor>, config: SgdConfig) -> Sgd {
        let n = params.len();
        Sgd {
            params,
            config,
            buffers: vec![None; n],
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let c = self.config;
        for (p, slot) in self.params.iter().zip(self.buffers.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            let init = slot.is_none();
            let states = if c.momentum != 0.0 {
                vec![state_like(slot, p)?]
            } else {
                vec![]
            };
            let rule = Rule::Sgd {
                lr: c.lr,
                momentum: c.momentum,
                dampening: c.dampening,
                nesterov: c.nesterov,
                weight_decay: c.weight_decay,
                maximize: c.maximize,
                first_step: init,
            };
            apply(p, &g, &states, &rule)?;
        }
        Ok(())
    }
    fn params(&self) -> &[Tensor] {
        &self.params
    }
    fn lr(&self) -> f64 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}
