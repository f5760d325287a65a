//! The variance model: how surprising a window's count is for this service.
//!
//! Real report counts are overdispersed: bursts, viral posts and news cycles
//! make their variance far larger than the mean a Poisson model assumes. A
//! window of `n` distinct authors against an expectation `μ` is therefore
//! judged under a negative binomial with the same mean and variance
//! `μ + φ·μ²`, where the dispersion `φ` is learned per service and per
//! scale (the last 1, 2, … buckets of the window) from the service's own
//! recent residuals:
//!
//! - the estimate pools the residuals by their weight: the exponentially
//!   weighted mean of the excess `(n − μ)² − μ` over the exponentially
//!   weighted mean of `μ²` (each of whose ratios has expectation `φ` under
//!   the model). The per-window ratio `((n − μ)² − μ) / μ²` would be just
//!   as unbiased, but at the tiny expectations of a sparse service one
//!   stray count weighs hundreds: a series that is mostly zeros learned a
//!   dispersion of 10 (the cap) and then nothing short of 60× its normal
//!   could page;
//! - each residual is first winsorised at `CLIP_SD` standard deviations of
//!   the current model, both ways, so ordinary bursts are learned and a
//!   rare surge moves the estimate by a bounded step (cutting only at the
//!   paging line, as before, let every large burst widen the band that
//!   judges the next one: the estimate ran away on bursty sparse series);
//! - nothing is learned during a young incident.
//!
//! With `φ = 0` this is the Poisson test; for small expectations `φ·μ²` is
//! negligible and the test stays as sensitive as before.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, DiscreteCDF, NegativeBinomial, Normal, Poisson};

/// Largest dispersion the model believes (a variance of 10·μ²).
const MAX_DISPERSION: f64 = 10.0;
/// Residuals are winsorised at this many standard deviations (4 keeps the
/// bursty-week test's services at 0 false alerts; 3 under-learned the
/// sparse one's bursts and paged once).
const CLIP_SD: f64 = 4.0;

/// Above this expectation the Poisson tails are read from the normal
/// distribution of the same mean and variance, continuity corrected: the
/// incomplete gamma function behind the exact tails takes a number of
/// steps growing with √λ near the mean (`series --explain` on a count of
/// bytes ran for minutes), while the two differ by a fraction of a percent
/// of the tail there, the Poisson's skew being 1/√λ (tested).
const POISSON_EXACT_UP_TO: f64 = 1e8;

/// The normal stand-in for Poisson(λ) past [`POISSON_EXACT_UP_TO`].
fn poisson_as_normal(lambda: f64) -> Option<Normal> {
    (lambda > POISSON_EXACT_UP_TO)
        .then(|| Normal::new(lambda, lambda.sqrt()).ok())
        .flatten()
}

/// P(X ≥ k) for X ~ Poisson(λ).
pub fn poisson_tail(lambda: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if let Some(normal) = poisson_as_normal(lambda) {
        return normal.sf(k as f64 - 0.5);
    }
    match Poisson::new(lambda.max(1e-9)) {
        Ok(dist) => dist.sf(k - 1),
        Err(_) => 1.0,
    }
}

/// P(X ≥ k) for X negative binomial with mean `mean` and variance
/// `mean + dispersion·mean²` (Poisson when the dispersion is 0).
pub fn nb_tail(mean: f64, dispersion: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let mean = mean.max(1e-9);
    match negative_binomial(mean, dispersion) {
        Some(dist) => dist.sf(k - 1).clamp(0.0, 1.0),
        None => poisson_tail(mean, k),
    }
}

/// The negative binomial of mean `mean` (positive) and variance
/// `mean + dispersion·mean²`, dispersion capped at [`MAX_DISPERSION`];
/// `None` where the model is Poisson (no dispersion) or not defined.
fn negative_binomial(mean: f64, dispersion: f64) -> Option<NegativeBinomial> {
    if dispersion.is_nan() || dispersion <= 1e-9 {
        return None;
    }
    let r = 1.0 / dispersion.min(MAX_DISPERSION);
    NegativeBinomial::new(r, r / (r + mean)).ok()
}

/// P(X ≤ k) for X ~ Poisson(λ): how surprising a window this far *below*
/// its expectation is (a fall).
pub fn poisson_lower_tail(lambda: f64, k: u64) -> f64 {
    if let Some(normal) = poisson_as_normal(lambda) {
        return normal.cdf(k as f64 + 0.5);
    }
    match Poisson::new(lambda.max(1e-9)) {
        Ok(dist) => dist.cdf(k).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// P(X ≤ k) for X negative binomial with mean `mean` and variance
/// `mean + dispersion·mean²`: the lower tail of [`nb_tail`]'s model.
pub fn nb_lower_tail(mean: f64, dispersion: f64, k: u64) -> f64 {
    let mean = mean.max(1e-9);
    match negative_binomial(mean, dispersion) {
        Some(dist) => dist.cdf(k).clamp(0.0, 1.0),
        None => poisson_lower_tail(mean, k),
    }
}

/// The smallest count whose tail probability is at most `p`: the upper edge
/// of the band, for `series --explain` (`SEARCH_CAP` if none below it).
pub fn nb_upper(mean: f64, dispersion: f64, p: f64) -> u64 {
    first_count(|k| nb_tail(mean, dispersion, k) <= p)
}

/// The largest count whose lower tail probability is at most `p`: the
/// lower edge of the band, for `series --explain` (`None` when even 0 is
/// more likely than that).
pub fn nb_lower(mean: f64, dispersion: f64, p: f64) -> Option<u64> {
    first_count(|k| nb_lower_tail(mean, dispersion, k) > p).checked_sub(1)
}

/// Where the band's edges are looked for: counts up to about 10¹², past
/// which a count is as good as endless (and the tails slow to work out).
const SEARCH_CAP: u64 = 1 << 40;

/// The smallest count `k` for which `holds(k)`, for a `holds` that is
/// false up to some count and true from it on: doubling, then bisecting.
/// [`SEARCH_CAP`] if it holds for no smaller count.
fn first_count(holds: impl Fn(u64) -> bool) -> u64 {
    if holds(0) {
        return 0;
    }
    let (mut lo, mut hi) = (0u64, 1u64);
    while !holds(hi) {
        if hi >= SEARCH_CAP {
            return SEARCH_CAP;
        }
        lo = hi;
        hi *= 2;
    }
    // Invariant: not holds(lo), holds(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Learned dispersion per scale (index 0: the last bucket alone, …, the
/// last: the whole window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dispersion {
    /// The estimate per scale (the ratio of the two sums below).
    pub by_scale: Vec<f64>,
    /// Exponentially weighted means behind the estimate, per scale: of the
    /// excess `d² − μ` and of `μ²` (`[0, 0]` until the scale is learned; a
    /// state saved before they existed continues from `by_scale`).
    #[serde(default)]
    pub pooled: Vec<[f64; 2]>,
}

impl Dispersion {
    /// The dispersion at `scale` (1-based buckets), `initial` until learned.
    pub fn at(&self, scale: usize, initial: f64) -> f64 {
        self.by_scale
            .get(scale.saturating_sub(1))
            .copied()
            .unwrap_or(initial)
            .clamp(0.0, MAX_DISPERSION)
    }

    /// Learns one residual: `observed` against `expected` at `scale`, with
    /// weight `alpha` (0..1, from the elapsed time and the time constant).
    /// The deviation is winsorised at `CLIP_SD` standard deviations of the
    /// current model first.
    pub fn learn(&mut self, scale: usize, observed: f64, expected: f64, alpha: f64, initial: f64) {
        if scale == 0 || expected.is_nan() || expected <= 0.0 || !observed.is_finite() {
            return;
        }
        if self.by_scale.len() < scale {
            self.by_scale.resize(scale, initial);
        }
        if self.pooled.len() < scale {
            self.pooled.resize(scale, [0.0, 0.0]);
        }
        let phi = self.at(scale, initial);
        let mu2 = expected * expected;
        let sd = (expected + phi * mu2).sqrt();
        let d = (observed - expected).clamp(-CLIP_SD * sd, CLIP_SD * sd);
        let [excess, weight] = &mut self.pooled[scale - 1];
        if *weight <= 0.0 {
            // Start from the current estimate, weighted as one window.
            *excess = self.by_scale[scale - 1] * mu2;
            *weight = mu2;
        }
        *excess += alpha * (d * d - expected - *excess);
        *weight += alpha * (mu2 - *weight);
        // The estimate may dip below 0 (Poisson noise is all there is); it
        // is clamped where it is used, not here, so it stays unbiased.
        if *weight > 0.0 {
            self.by_scale[scale - 1] = (*excess / *weight).clamp(-MAX_DISPERSION, MAX_DISPERSION);
        }
    }
}

/// Weight of one new observation in an exponentially weighted mean with
/// time constant `tau_secs`, after `elapsed_secs`.
pub fn ew_alpha(elapsed_secs: f64, tau_secs: f64) -> f64 {
    if tau_secs.is_nan() || tau_secs <= 0.0 {
        return 1.0;
    }
    1.0 - (-elapsed_secs.max(0.0) / tau_secs).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nb_tail_is_poisson_without_dispersion_and_heavier_with_it() {
        assert!((nb_tail(1.0, 0.0, 1) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        let poisson = nb_tail(50.0, 0.0, 100);
        let nb = nb_tail(50.0, 0.2, 100);
        assert!(poisson < 1e-8, "{poisson}");
        assert!(nb > 1e-3 && nb < 0.1, "{nb}");
        // NB(r=1) is geometric: P(X ≥ k) = (1-p)^k with p = 1/(1+μ).
        let mu: f64 = 4.0;
        let want = (mu / (1.0 + mu)).powi(3);
        assert!((nb_tail(mu, 1.0, 3) - want).abs() < 1e-9);
        assert_eq!(nb_tail(3.0, 0.5, 0), 1.0);
    }

    #[test]
    fn lower_tails_are_one_minus_the_upper_tail_above_and_heavier_with_dispersion() {
        // Table: (mean, dispersion, k); P(X ≤ k) + P(X ≥ k + 1) = 1.
        for (mean, phi, k) in [
            (5.0, 0.0, 0),
            (5.0, 0.0, 3),
            (100.0, 0.0, 60),
            (100.0, 0.1, 60),
            (100.0, 0.5, 10),
            (0.3, 2.0, 0),
        ] {
            let sum = nb_lower_tail(mean, phi, k) + nb_tail(mean, phi, k + 1);
            assert!((sum - 1.0).abs() < 1e-9, "{mean} {phi} {k}: {sum}");
        }
        assert!((poisson_lower_tail(2.0, 0) - (-2.0f64).exp()).abs() < 1e-12);
        // 40 against 100 is a drop nobody expects from counting noise, and
        // an ordinary dip for a series that varies by half its level.
        assert!(poisson_lower_tail(100.0, 40) < 1e-9);
        assert!(nb_lower_tail(100.0, 0.25, 40) > 0.05);
    }

    #[test]
    fn past_a_hundred_million_the_poisson_tails_are_the_normal_s_within_a_percent() {
        // Just past the switch, the exact tails against the stand-in, out
        // to where the band's edges lie (4 to 6 standard deviations).
        let lambda = POISSON_EXACT_UP_TO * 1.000_001;
        let exact = Poisson::new(lambda).expect("λ");
        for z in [-6.0, -4.5, -3.0, 3.0, 4.5, 6.0] {
            let k = (lambda + z * lambda.sqrt()).round() as u64;
            let (got, want) = if z > 0.0 {
                (poisson_tail(lambda, k), exact.sf(k - 1))
            } else {
                (poisson_lower_tail(lambda, k), exact.cdf(k))
            };
            assert!(
                ((got - want) / want).abs() < 0.01,
                "z {z}: {got:e} against {want:e}"
            );
        }
        // And far past it, the band is found at once and where it belongs.
        let lambda = 6e10;
        let up = nb_upper(lambda, 0.0, 1e-5);
        let low = nb_lower(lambda, 0.0, 1e-5).expect("an edge");
        let sd = lambda.sqrt();
        assert!((4.2..4.4).contains(&((up as f64 - lambda) / sd)), "{up}");
        assert!((4.2..4.4).contains(&((lambda - low as f64) / sd)), "{low}");
    }

    #[test]
    fn the_lower_band_is_the_last_count_within_p() {
        for (mean, phi) in [(50.0, 0.0), (600.0, 0.1), (300.0, 0.3), (2_000.0, 0.02)] {
            let low = nb_lower(mean, phi, 1e-5).expect("a count this far down is rare");
            assert!(nb_lower_tail(mean, phi, low) <= 1e-5);
            assert!(
                nb_lower_tail(mean, phi, low + 1) > 1e-5,
                "{mean} {phi} {low}"
            );
        }
        // Around 3 expected, nothing is rare enough: even 0 has e^-3.
        assert_eq!(nb_lower(3.0, 0.0, 1e-5), None);
        // Counts past the search's reach end it: the edges are capped, and
        // a mean near u64::MAX neither wraps around nor hangs.
        assert_eq!(nb_upper(1e18, 0.1, 1e-5), SEARCH_CAP);
        assert_eq!(nb_lower(1e19, 0.0, 1e-5), Some(SEARCH_CAP - 1));
    }

    #[test]
    fn the_upper_band_is_the_first_count_past_p() {
        for (mean, phi) in [(0.5, 0.0), (20.0, 0.1), (300.0, 0.3)] {
            let up = nb_upper(mean, phi, 1e-5);
            assert!(nb_tail(mean, phi, up) <= 1e-5);
            assert!(nb_tail(mean, phi, up - 1) > 1e-5, "{mean} {phi} {up}");
        }
    }

    #[test]
    fn dispersion_learns_overdispersed_counts_and_ignores_rare_bursts() {
        // Counts alternating 50 ± 20 around 50: variance 400 = μ + φμ² with
        // φ = (400 − 50) / 2500 = 0.14; one burst of 5000 in a thousand
        // barely moves it (winsorised).
        let mut d = Dispersion::default();
        for i in 0..5000 {
            let x = if i == 2500 {
                5000.0
            } else if i % 2 == 0 {
                30.0
            } else {
                70.0
            };
            d.learn(1, x, 50.0, 0.005, 0.1);
        }
        let phi = d.at(1, 0.1);
        assert!((phi - 0.14).abs() < 0.02, "{phi}");
        // Poisson-like counts learn a dispersion near 0.
        let mut p = Dispersion::default();
        for i in 0..5000 {
            let x = [8.0, 10.0, 12.0, 10.0, 9.0, 11.0, 7.0, 13.0][i % 8];
            p.learn(2, x, 10.0, 0.005, 0.1);
        }
        assert!(p.at(2, 0.1) < 0.02, "{}", p.at(2, 0.1));
    }

    #[test]
    fn a_sparse_service_with_rare_bursts_keeps_a_small_dispersion() {
        // Half an author a window, Poisson-like (variance 0.5 = the mean),
        // and a burst of 40 once in 500 windows: the per-window excess of
        // the burst is (39.5² − 0.5) / 0.25 ≈ 6 000; pooled and winsorised
        // it must not teach that 40 is ordinary.
        let mut d = Dispersion::default();
        for i in 0..20_000 {
            let x = if i % 500 == 250 {
                40.0
            } else {
                [0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0][i % 8]
            };
            d.learn(1, x, 0.5, 0.005, 0.1);
        }
        let phi = d.at(1, 0.1);
        assert!(phi < 0.5, "{phi}");
        assert!(
            nb_tail(0.5, phi, 20) < 1e-5,
            "20 stays improbable at φ = {phi}"
        );
        // A state saved before the pooled sums existed continues from its
        // estimate.
        let mut old = Dispersion {
            by_scale: vec![0.3],
            pooled: Vec::new(),
        };
        old.learn(1, 50.0, 50.0, 1e-6, 0.1);
        assert!((old.at(1, 0.1) - 0.3).abs() < 1e-3, "{}", old.at(1, 0.1));
    }
}
