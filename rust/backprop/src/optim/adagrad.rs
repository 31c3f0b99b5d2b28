//! Adagrad with learning-rate decay.

use super::update::{apply, Rule};
use super::Optimizer;
use crate::{Result, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct AdagradConfig {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

pub struct Adagrad {
    params: Vec<Tensor>,
    pub config: AdagradConfig,
    state: Vec<(u64, Option<Tensor>)>,
}

impl Adagrad {
    pub fn new(params: Vec<Tensor>, config: AdagradConfig) -> Adagrad {
        let state = params.iter().map(|_| (0, None)).collect();
        Adagrad {
            params,
            config,
            state,
        }
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self) -> Result<()> {
        let c = self.config;
        for (p, (step, sum)) in self.params.iter().zip(self.state.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            if sum.is_none() {
                *sum = Some(p.detach().full_like(c.initial_accumulator_value)?);
            }
            *step += 1;
            let states: Vec<Tensor> = sum.iter().cloned().collect();
            apply(
                p,
                &g,
                &states,
                &Rule::Adagrad {
                    lr: c.lr,
                    lr_decay: c.lr_decay,
                    weight_decay: c.weight_decay,
                    eps: c.eps,
                    maximize: c.maximize,
                    step: *step,
                },
            )?;
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
