//! RMSprop, optionally centered and with momentum.

use super::update::{apply, Rule};
use super::{state_like, Optimizer};
use crate::{Result, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct RmsPropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

pub struct RmsProp {
    params: Vec<Tensor>,
    pub config: RmsPropConfig,
    state: Vec<[Option<Tensor>; 3]>,
}

impl RmsProp {
    pub fn new(params: Vec<Tensor>, config: RmsPropConfig) -> RmsProp {
        let state = params.iter().map(|_| [None, None, None]).collect();
        RmsProp {
            params,
            config,
            state,
        }
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) -> Result<()> {
        let c = self.config;
        for (p, s) in self.params.iter().zip(self.state.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            let [sq, buf, ga] = s;
            let mut states = vec![state_like(sq, p)?];
            if c.momentum > 0.0 {
                states.push(state_like(buf, p)?);
            }
            if c.centered {
                states.push(state_like(ga, p)?);
            }
            let rule = Rule::RmsProp {
                lr: c.lr,
                alpha: c.alpha,
                eps: c.eps,
                weight_decay: c.weight_decay,
                momentum: c.momentum,
                centered: c.centered,
                maximize: c.maximize,
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
