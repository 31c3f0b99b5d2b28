//! Adam and AdamW (decoupled weight decay), with optional AMSGrad.

use super::update::{apply, Rule};
use super::{state_like, Optimizer};
use crate::{Result, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    /// `true` for AdamW: weight decay shrinks the weights directly instead of adding to the gradient.
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl AdamConfig {
    /// PyTorch's AdamW defaults (weight_decay 0.01, decoupled).
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..Default::default()
        }
    }
}

struct State {
    step: u64,
    m: Option<Tensor>,
    v: Option<Tensor>,
    vmax: Option<Tensor>,
}

pub struct Adam {
    params: Vec<Tensor>,
    pub config: AdamConfig,
    state: Vec<State>,
}

impl Adam {
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Adam {
        let state = params
            .iter()
            .map(|_| State {
                step: 0,
                m: None,
                v: None,
                vmax: None,
            })
            .collect();
        Adam {
            params,
            config,
            state,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        let c = self.config;
        for (p, s) in self.params.iter().zip(self.state.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            s.step += 1;
            let mut states = vec![state_like(&mut s.m, p)?, state_like(&mut s.v, p)?];
            if c.amsgrad {
                states.push(state_like(&mut s.vmax, p)?);
            }
            let rule = Rule::Adam {
                lr: c.lr,
                beta1: c.betas.0,
                beta2: c.betas.1,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled: c.decoupled_weight_decay,
                amsgrad: c.amsgrad,
                maximize: c.maximize,
                step: s.step,
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
