//! The engine's random number generator: one global stream, reseeded by `manual_seed`.
//!
//! xoshiro256++ seeded through SplitMix64 is written out here (a dozen lines) rather than pulled
//! from a crate because the stream is part of the engine's reproducibility contract: the same
//! seed gives the same weights, dropout masks and shuffles on every platform and release.

use std::sync::Mutex;

/// The seed used until `manual_seed` is called (PyTorch's default seed, for familiarity).
pub const DEFAULT_SEED: u64 = 67280421310721;

pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E3779B97F4A7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1) with 24 random bits: every value is an exact float32 below 1.
    #[inline]
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Two independent standard normal samples (Box-Muller).
    #[inline]
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.uniform(); // (0, 1]: log is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }

    /// Standard normal samples (Box-Muller; both values of each pair are used).
    pub fn fill_normal(&mut self, out: &mut [f64]) {
        let mut i = 0;
        while i < out.len() {
            let (a, b) = self.normal_pair();
            out[i] = a;
            if i + 1 < out.len() {
                out[i + 1] = b;
            }
            i += 2;
        }
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let lo = m as u64;
            if lo >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
}

static GLOBAL: Mutex<Option<Rng>> = Mutex::new(None);

/// Reseeds the global generator (PyTorch's `torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng::new(seed));
}

/// Runs `f` with the global generator.
pub fn with_rng<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let rng = g.get_or_insert_with(|| Rng::new(DEFAULT_SEED));
    f(rng)
}

/// The global generator's state, its four xoshiro256++ words (`torch.get_rng_state`).
///
/// ```
/// let s = backprop::random::state();
/// let a = backprop::random::with_rng(|r| r.next_u64());
/// backprop::random::set_state(s)?;
/// assert_eq!(backprop::random::with_rng(|r| r.next_u64()), a);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn state() -> [u64; 4] {
    with_rng(|r| r.s)
}

/// Restores a state from [`state`] (`torch.set_rng_state`). All-zero words are refused: xoshiro
/// would then produce zeros forever.
pub fn set_state(words: [u64; 4]) -> crate::Result<()> {
    if words == [0; 4] {
        return Err(crate::Error::invalid(
            "set_rng_state",
            "the state is all zeros, which is not a state the generator can be in",
        ));
    }
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng { s: words });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::new(1);
        let mut v = vec![0.0; 200_000];
        r.fill_normal(&mut v);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        // standard error of the mean is 1/sqrt(2e5) ~ 0.0022; of the variance ~ 0.0032
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.015, "{var}");
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut r = Rng::new(3);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[r.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }
}
