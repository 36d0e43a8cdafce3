//! The statistics of the protocol, written to agree with SciPy to 1e-6 relative on the same numbers.
//!
//! * [`shapiro`] — Shapiro-Wilk W and p by Royston's algorithm AS R94 (as `scipy.stats.shapiro`,
//!   including its use of AS 111 for normal quantiles and AS 66 for the normal tail, so that the
//!   p-values match SciPy's and not merely the textbook's).
//! * [`kruskal`] — Kruskal-Wallis H with tie correction, p from the chi-squared survival function
//!   (`scipy.stats.kruskal`).
//! * [`dunn`] — Dunn's post hoc z test with the tie correction of Dunn (1964), two-sided normal p,
//!   Bonferroni-adjusted (`scikit_posthocs.posthoc_dunn(p_adjust='bonferroni')`).
//! * [`pearson`] — Pearson r and the two-sided p from the exact null distribution of r, a
//!   Beta(n/2 - 1, n/2 - 1) on [-1, 1] (`scipy.stats.pearsonr`).
//! * [`percentile_linear`] — numpy's default percentile (linear interpolation between order
//!   statistics).
//!
//! Every test returns `None` where SciPy would return NaN or raise (too few values, zero range,
//! all values identical), so an undefined statistic is never reported as a number.
use serde::Serialize;
use statrs::distribution::{Beta, ChiSquared, ContinuousCDF};

/// Result of a test with one statistic and one p-value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TestResult {
    /// W (Shapiro-Wilk), H (Kruskal-Wallis) or r (Pearson).
    pub statistic: f64,
    /// Two-sided p-value (upper tail for W and H).
    pub p_value: f64,
}

/// One pairwise comparison of Dunn's test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DunnPair {
    /// Index of the first group (in the order given).
    pub group_a: usize,
    /// Index of the second group.
    pub group_b: usize,
    /// |z| statistic.
    pub z: f64,
    /// Two-sided p before adjustment.
    pub p_unadjusted: f64,
    /// Bonferroni-adjusted p: `min(1, p * m)`, m = number of pairs among non-empty groups.
    pub p_bonferroni: f64,
}

/// Average ranks (1-based) of `x`, ties get the mean of their ranks (`scipy.stats.rankdata`).
/// Also returns `sum(t^3 - t)` over tie groups, the quantity both tie corrections need.
pub fn rankdata(x: &[f64]) -> (Vec<f64>, f64) {
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; n];
    let mut tie_sum = 0.0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // positions start..end (0-based) share rank mean(start+1 ..= end)
        let avg = (start + 1 + end) as f64 / 2.0;
        for &o in &order[start..end] {
            ranks[o] = avg;
        }
        let t = (end - start) as f64;
        tie_sum += t * t * t - t;
        start = end;
    }
    (ranks, tie_sum)
}

/// numpy's default (`method='linear'`) percentile, `q` in [0, 100]. `None` for an empty input.
pub fn percentile_linear(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(percentile_sorted(&v, q))
}

/// [`percentile_linear`] on an already sorted, non-empty slice.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let pos = q / 100.0 * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    // numpy's _lerp: a + (b - a) * t, switched to b - (b - a) * (1 - t) for t >= 0.5
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if frac >= 0.5 {
        b - diff * (1.0 - frac)
    } else {
        a + diff * frac
    }
}

/// Kruskal-Wallis H test with tie correction over any number of groups. Empty groups are ignored;
/// `None` when fewer than two non-empty groups remain or all values are identical.
pub fn kruskal(groups: &[&[f64]]) -> Option<TestResult> {
    let groups: Vec<&[f64]> = groups.iter().copied().filter(|g| !g.is_empty()).collect();
    if groups.len() < 2 {
        return None;
    }
    let all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    if all.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = all.len() as f64;
    let (ranks, tie_sum) = rankdata(&all);
    let tie_correction = 1.0 - tie_sum / (n * n * n - n);
    if tie_correction <= 0.0 {
        return None;
    }
    let mut ssbn = 0.0;
    let mut offset = 0;
    for g in &groups {
        let s: f64 = ranks[offset..offset + g.len()].iter().sum();
        ssbn += s * s / g.len() as f64;
        offset += g.len();
    }
    let h = (12.0 / (n * (n + 1.0)) * ssbn - 3.0 * (n + 1.0)) / tie_correction;
    let df = (groups.len() - 1) as f64;
    let p = ChiSquared::new(df).ok()?.sf(h);
    Some(TestResult { statistic: h, p_value: p })
}

/// Dunn's pairwise test after Kruskal-Wallis, tie-corrected, with Bonferroni-adjusted p-values.
///
/// z = |mean rank_a - mean rank_b| / sqrt((N(N+1)/12 - sum(t^3 - t) / (12 (N - 1))) (1/n_a + 1/n_b)),
/// ranks over all values pooled; p = 2 (1 - Phi(|z|)). Pairs involving an empty group are left
/// out, and m counts only the pairs that are reported. `None` when fewer than two non-empty groups.
pub fn dunn(groups: &[&[f64]]) -> Option<Vec<DunnPair>> {
    let present: Vec<usize> = (0..groups.len()).filter(|&g| !groups[g].is_empty()).collect();
    if present.len() < 2 {
        return None;
    }
    let all: Vec<f64> = present.iter().flat_map(|&g| groups[g].iter().copied()).collect();
    if all.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = all.len() as f64;
    let (ranks, tie_sum) = rankdata(&all);
    let mut mean_rank = vec![0.0; groups.len()];
    let mut offset = 0;
    for &g in &present {
        let len = groups[g].len();
        mean_rank[g] = ranks[offset..offset + len].iter().sum::<f64>() / len as f64;
        offset += len;
    }
    let a = n * (n + 1.0) / 12.0;
    let tie = if tie_sum == 0.0 { 0.0 } else { tie_sum / (12.0 * (n - 1.0)) };
    let m = (present.len() * (present.len() - 1) / 2) as f64;
    let mut out = Vec::new();
    for (x, &ga) in present.iter().enumerate() {
        for &gb in &present[x + 1..] {
            let b = 1.0 / groups[ga].len() as f64 + 1.0 / groups[gb].len() as f64;
            let var = (a - tie) * b;
            let z = (mean_rank[ga] - mean_rank[gb]).abs() / var.sqrt();
            // 2 * sf(|z|) = erfc(|z| / sqrt 2), precise in the far tail
            let p =
                if var > 0.0 { statrs::function::erf::erfc(z / std::f64::consts::SQRT_2) } else { f64::NAN };
            out.push(DunnPair {
                group_a: ga,
                group_b: gb,
                z,
                p_unadjusted: p,
                p_bonferroni: (p * m).min(1.0),
            });
        }
    }
    Some(out)
}

/// Pearson's r and its two-sided p-value (exact under bivariate normality). `None` for fewer than
/// two pairs, unequal lengths, non-finite values or a constant input (r undefined).
pub fn pearson(x: &[f64], y: &[f64]) -> Option<TestResult> {
    let n = x.len();
    if n < 2 || y.len() != n || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let xm: Vec<f64> = x.iter().map(|v| v - mx).collect();
    let ym: Vec<f64> = y.iter().map(|v| v - my).collect();
    let nx = xm.iter().map(|v| v * v).sum::<f64>().sqrt();
    let ny = ym.iter().map(|v| v * v).sum::<f64>().sqrt();
    if nx == 0.0 || ny == 0.0 {
        return None;
    }
    let r = xm.iter().zip(&ym).map(|(a, b)| (a / nx) * (b / ny)).sum::<f64>().clamp(-1.0, 1.0);
    if n == 2 {
        return Some(TestResult { statistic: r, p_value: 1.0 });
    }
    // Under H0, (r + 1) / 2 ~ Beta(n/2 - 1, n/2 - 1); the distribution is symmetric, so the upper
    // tail at (|r| + 1)/2 equals the lower tail at (1 - |r|)/2, which keeps precision for tiny p.
    let ab = n as f64 / 2.0 - 1.0;
    let beta = Beta::new(ab, ab).ok()?;
    let p = (2.0 * beta.cdf((1.0 - r.abs()) / 2.0)).min(1.0);
    Some(TestResult { statistic: r, p_value: p })
}

/// Shapiro-Wilk test (AS R94). `None` for n < 3, non-finite values, or zero range.
///
/// Follows `scipy.stats.shapiro`: the sample is shifted by the value at position n/2 *of the input
/// order* before sorting (a numerical-conditioning step that leaves W unchanged in exact arithmetic),
/// then W is computed as one minus the squared correlation defect between the coefficients and the
/// ordered sample, and p from Royston's normalising transformations.
pub fn shapiro(x: &[f64]) -> Option<TestResult> {
    let n = x.len();
    if n < 3 || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let shift = x[n / 2];
    let mut y: Vec<f64> = x.to_vec();
    y.sort_by(f64::total_cmp);
    for v in &mut y {
        *v -= shift;
    }
    let (w, pw) = swilk(&y)?;
    Some(TestResult { statistic: w, p_value: pw })
}

const C1: [f64; 6] = [0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
const C2: [f64; 6] = [0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
const C3: [f64; 4] = [0.5440, -0.39978, 0.025054, -0.6714e-3];
const C4: [f64; 4] = [1.3822, -0.77857, 0.062767, -0.0020322];
const C5: [f64; 4] = [-1.5861, -0.31082, -0.083751, 0.0038915];
const C6: [f64; 3] = [-0.4803, -0.082676, 0.0030302];
const G: [f64; 2] = [-2.273, 0.459];
const SMALL: f64 = 1e-19;

/// c[0] + c[1] x + c[2] x^2 + ... (Horner).
fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

/// W and p for a sorted sample (AS R94, complete samples only).
fn swilk(x: &[f64]) -> Option<(f64, f64)> {
    let n = x.len();
    let an = n as f64;
    let nn2 = n / 2;
    // a[0..nn2]: coefficients for the pairs (x[n-1-i] - x[i]), positive.
    let mut a = vec![0.0; nn2];
    if n == 3 {
        a[0] = std::f64::consts::FRAC_1_SQRT_2;
    } else {
        let an25 = an + 0.25;
        let m: Vec<f64> = (0..nn2).map(|i| ppnd_as111((i as f64 + 1.0 - 0.375) / an25)).collect();
        let summ2 = 2.0 * m.iter().map(|v| v * v).sum::<f64>();
        let ssumm2 = summ2.sqrt();
        let rsn = 1.0 / an.sqrt();
        let a1 = poly(&C1, rsn) - m[0] / ssumm2;
        let (first_plain, fac) = if n > 5 {
            let a2 = -m[1] / ssumm2 + poly(&C2, rsn);
            let fac = ((summ2 - 2.0 * m[0] * m[0] - 2.0 * m[1] * m[1])
                / (1.0 - 2.0 * a1 * a1 - 2.0 * a2 * a2))
                .sqrt();
            a[1] = a2;
            (2, fac)
        } else {
            let fac = ((summ2 - 2.0 * m[0] * m[0]) / (1.0 - 2.0 * a1 * a1)).sqrt();
            (1, fac)
        };
        a[0] = a1;
        for i in first_plain..nn2 {
            a[i] = -m[i] / fac;
        }
    }
    let range = x[n - 1] - x[0];
    if range < SMALL {
        return None;
    }
    // Full antisymmetric coefficient vector: -a[i] for the lower half, +a[n-1-i] for the upper,
    // 0 in the middle of an odd sample.
    let coef = |i: usize| -> f64 {
        let j = n - 1 - i;
        if i == j {
            0.0
        } else if i < j {
            -a[i]
        } else {
            a[j]
        }
    };
    let sa = (0..n).map(coef).sum::<f64>() / an;
    let sx = x.iter().map(|v| v / range).sum::<f64>() / an;
    let (mut ssa, mut ssx, mut sax) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let asa = coef(i) - sa;
        let xsx = x[i] / range - sx;
        ssa += asa * asa;
        ssx += xsx * xsx;
        sax += asa * xsx;
    }
    let ssassx = (ssa * ssx).sqrt();
    // 1 - W computed directly, which keeps precision when W is close to 1
    let w1 = (ssassx - sax) * (ssassx + sax) / (ssa * ssx);
    let w = 1.0 - w1;
    if n == 3 {
        // exact distribution for n = 3; W >= 0.75 in theory, clamp rounding below it
        if w < 0.75 {
            return Some((0.75, 0.0));
        }
        let pi6 = 6.0 / std::f64::consts::PI;
        return Some((w, 1.0 - pi6 * w.sqrt().acos()));
    }
    let mut y = w1.ln();
    let (m, s);
    if n <= 11 {
        let gamma = poly(&G, an);
        if y >= gamma {
            return Some((w, SMALL));
        }
        y = -(gamma - y).ln();
        m = poly(&C3, an);
        s = poly(&C4, an).exp();
    } else {
        let xx = an.ln();
        m = poly(&C5, xx);
        s = poly(&C6, xx).exp();
    }
    Some((w, alnorm_upper((y - m) / s)))
}

/// Normal quantile, algorithm AS 111 (Beasley & Springer 1977) — the one AS R94 specifies.
fn ppnd_as111(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.42 {
        let r = q * q;
        let num = q * (((-25.44106049637 * r + 41.39119773534) * r - 18.61500062529) * r + 2.50662823884);
        let den = (((3.13082909833 * r - 21.06224101826) * r + 23.08336743743) * r - 8.47351093090) * r + 1.0;
        return num / den;
    }
    let mut r = if q > 0.0 { 1.0 - p } else { p };
    if r <= 0.0 {
        return 0.0;
    }
    r = (-r.ln()).sqrt();
    let v = (((2.32121276858 * r + 4.85014127135) * r - 2.29796479134) * r - 2.78718931138)
        / ((1.63706781897 * r + 3.54388924762) * r + 1.0);
    if q < 0.0 {
        -v
    } else {
        v
    }
}

/// Upper tail of the standard normal, algorithm AS 66 (Hill 1973) with the extended upper range.
fn alnorm_upper(x: f64) -> f64 {
    let mut upper = true;
    let mut z = x;
    // NaN takes this branch too (as in AS 66)
    if z.is_nan() || z <= 0.0 {
        upper = false;
        z = -z;
    }
    if !(z <= 7.0 || (upper && z <= 38.0)) {
        return if upper { 0.0 } else { 1.0 };
    }
    let y = 0.5 * z * z;
    let temp = if z <= 1.28 {
        0.5 - z
            * (0.398942280444
                - 0.399903438504 * y
                    / (y + 5.75885480458
                        - 29.8213557808 / (y + 2.62433121679 + 48.6959930692 / (y + 5.92885724438))))
    } else {
        0.398942280385 * (-y).exp()
            / (z - 3.8052e-8
                + 1.00000615302
                    / (z + 3.98064794e-4
                        + 1.98615381364
                            / (z - 0.151679116635
                                + 5.29330324926
                                    / (z + 4.8385912808
                                        - 15.1508972451
                                            / (z + 0.742380924027 + 30.789933034 / (z + 3.99019417011))))))
    };
    if upper {
        temp
    } else {
        1.0 - temp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_with_ties() {
        let (r, t) = rankdata(&[3.0, 1.0, 3.0, 2.0, 3.0]);
        assert_eq!(r, vec![4.0, 1.0, 4.0, 2.0, 4.0]);
        assert_eq!(t, 24.0); // one tie group of 3: 27 - 3
    }

    #[test]
    fn percentile_matches_numpy_definition() {
        // np.percentile([1, 2, 3, 4], 95) = 3 + 0.85 = 3.85
        assert!((percentile_linear(&[4.0, 1.0, 3.0, 2.0], 95.0).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(percentile_linear(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile_linear(&[], 95.0), None);
    }

    #[test]
    fn undefined_cases_are_none() {
        assert!(shapiro(&[1.0, 2.0]).is_none());
        assert!(shapiro(&[2.0, 2.0, 2.0, 2.0]).is_none());
        assert!(kruskal(&[&[1.0, 1.0], &[1.0]]).is_none());
        assert!(kruskal(&[&[1.0, 2.0], &[]]).is_none());
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
        assert!(dunn(&[&[1.0], &[]]).is_none());
    }

    #[test]
    fn pearson_perfect_line() {
        let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert!((r.statistic - 1.0).abs() < 1e-15);
        assert!(r.p_value < 1e-12);
    }
}
