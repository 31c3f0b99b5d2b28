//! The update rules of the fused optimizer step, as data: each variant holds the user's
//! hyper-parameters and the step number, and the step-dependent factors (Adam's bias corrections,
//! Adagrad's decayed learning rate, the `1 - beta` terms) are derived here, once, in f64, for
//! every backend. The rules are PyTorch's published update rules, term for term.

/// One optimiser step's rule for one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// `states = [momentum_buffer]` when `momentum != 0`, else `[]`. `first_step`: PyTorch
    /// initialises the buffer with the gradient itself on the step that creates it.
    Sgd {
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
        maximize: bool,
        first_step: bool,
    },
    /// `states = [exp_avg, exp_avg_sq]` (+ `[max_exp_avg_sq]` with amsgrad). `decoupled` is
    /// AdamW. `step` counts from 1 (this step included).
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
        amsgrad: bool,
        maximize: bool,
        step: u64,
    },
    /// `states = [square_avg]` (+ `[momentum_buffer]` if momentum > 0) (+ `[grad_avg]` if centered).
    RmsProp {
        lr: f64,
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: bool,
        maximize: bool,
    },
    /// `states = [sum]`. `step` counts from 1 (this step included).
    Adagrad {
        lr: f64,
        lr_decay: f64,
        weight_decay: f64,
        eps: f64,
        maximize: bool,
        step: u64,
    },
}

/// Adam's step-dependent factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamFactors {
    /// `lr / (1 - beta1^t)`
    pub step_size: f64,
    /// `1 / sqrt(1 - beta2^t)`
    pub inv_sqrt_bias2: f64,
    /// `1 - lr * weight_decay` (AdamW's shrink)
    pub decay: f64,
    /// `1 - beta1`, `1 - beta2`: in f64, since from a float32-rounded beta2 the first step would
    /// be 1.0000065 x lr where PyTorch's stays <= lr
    pub one_minus_beta1: f64,
    pub one_minus_beta2: f64,
}

impl Rule {
    /// How many state tensors the rule reads and writes.
    pub fn n_states(&self) -> usize {
        match *self {
            Rule::Sgd { momentum, .. } => (momentum != 0.0) as usize,
            Rule::Adam { amsgrad, .. } => 2 + amsgrad as usize,
            Rule::RmsProp {
                momentum, centered, ..
            } => 1 + (momentum > 0.0) as usize + centered as usize,
            Rule::Adagrad { .. } => 1,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Rule::Sgd { .. } => "sgd",
            Rule::Adam { .. } => "adam",
            Rule::RmsProp { .. } => "rmsprop",
            Rule::Adagrad { .. } => "adagrad",
        }
    }

    /// Adam's factors for step `step` (>= 1).
    pub fn adam_factors(
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        step: u64,
    ) -> AdamFactors {
        let t = step.max(1) as f64;
        AdamFactors {
            step_size: lr / (1.0 - beta1.powf(t)),
            inv_sqrt_bias2: 1.0 / (1.0 - beta2.powf(t)).sqrt(),
            decay: 1.0 - lr * weight_decay,
            one_minus_beta1: 1.0 - beta1,
            one_minus_beta2: 1.0 - beta2,
        }
    }

    /// Adagrad's learning rate at step `step` (>= 1): `lr / (1 + (step - 1) * lr_decay)`.
    pub fn adagrad_lr(lr: f64, lr_decay: f64, step: u64) -> f64 {
        lr / (1.0 + (step.max(1) - 1) as f64 * lr_decay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_is_at_most_lr() {
        // m = (1-b1) g, v = (1-b2) g^2: the step is step_size * m / sqrt(v) * sqrt(bias2) = lr
        let f = Rule::adam_factors(1e-3, 0.9, 0.999, 0.0, 1);
        let step = f.step_size * f.one_minus_beta1 / (f.one_minus_beta2.sqrt() * f.inv_sqrt_bias2);
        assert!((step - 1e-3).abs() < 1e-15, "{step}");
    }

    #[test]
    fn adagrad_decay() {
        assert_eq!(Rule::adagrad_lr(0.1, 0.5, 1), 0.1);
        assert!((Rule::adagrad_lr(0.1, 0.5, 3) - 0.05).abs() < 1e-15);
    }
}
