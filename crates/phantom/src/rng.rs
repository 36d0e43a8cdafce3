//! Seeded randomness. Every random draw goes through a [`ChaCha8Rng`] seeded from the phantom seed
//! and a stream name, or through a stateless hash of (seed, position), so results never depend on
//! thread scheduling.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator used everywhere.
pub type PRng = ChaCha8Rng;

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for an independent stream, derived from the master seed and a stream name.
pub fn stream_seed(seed: u64, stream: &str) -> u64 {
    let mut h = mix64(seed ^ 0x5851_F42D_4C95_7F2D);
    for b in stream.bytes() {
        h = mix64(h ^ b as u64);
    }
    h
}

/// A generator for one named stream.
pub fn stream(seed: u64, name: &str) -> PRng {
    PRng::seed_from_u64(stream_seed(seed, name))
}

/// Uniform draw in `[lo, hi)`.
#[inline]
pub fn uni(rng: &mut PRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// True with probability `p`.
#[inline]
pub fn chance(rng: &mut PRng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Standard normal draw (Box-Muller).
pub fn normal(rng: &mut PRng) -> f64 {
    let u1 = rng.random::<f64>().max(1e-12);
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-normal draw with the given median and log-space sigma, clamped to `[lo, hi]`.
pub fn lognormal(rng: &mut PRng, median: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    (median * (sigma * normal(rng)).exp()).clamp(lo, hi)
}

/// A random unit vector.
pub fn unit_vec(rng: &mut PRng) -> [f64; 3] {
    loop {
        let v = [uni(rng, -1.0, 1.0), uni(rng, -1.0, 1.0), uni(rng, -1.0, 1.0)];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if n > 1e-3 && n <= 1.0 {
            return [v[0] / n, v[1] / n, v[2] / n];
        }
    }
}

/// Approximately standard-normal value from a hash (Irwin-Hall sum of four 16-bit uniforms,
/// variance-normalised). Stateless, so per-voxel noise is identical however slices are scheduled.
#[inline]
pub fn hash_normal(h: u64) -> f32 {
    let s = (h & 0xFFFF) + ((h >> 16) & 0xFFFF) + ((h >> 32) & 0xFFFF) + (h >> 48);
    // mean 2 * 65535, variance 4 * 65536^2 / 12
    ((s as f32) - 131_070.0) * (1.0 / 37_837.2)
}

/// `x.floor()`, bit for bit (the sign of a zero included), without a library call on targets
/// that lack a rounding instruction.
#[inline]
pub fn floor_f64(x: f64) -> f64 {
    // Below 2^52 in magnitude the truncation to an integer is exact.
    if x.abs() < 4_503_599_627_370_496.0 {
        let t = x as i64 as f64;
        if t > x {
            t - 1.0
        } else if t == 0.0 {
            0.0f64.copysign(x)
        } else {
            t
        }
    } else {
        x.floor()
    }
}

/// The eight corner values of one lattice cell of [`value_noise`], kept for the next points of a
/// row that fall in the same cell.
#[derive(Clone, Copy, Debug)]
pub struct NoiseCell {
    seed: u64,
    cell: [i64; 3],
    corners: [f64; 8],
}

/// Smooth 3D value noise in about [-1, 1] with unit lattice spacing; `p` is already scaled by the
/// wanted frequency. Stateless (hash of the lattice corner).
#[inline]
pub fn value_noise(seed: u64, p: [f64; 3]) -> f64 {
    value_noise_cached(&mut None, seed, p)
}

/// [`value_noise`] reusing (and updating) the corner values of the last cell in `cache`: the
/// same value, bit for bit.
#[inline]
pub fn value_noise_cached(cache: &mut Option<NoiseCell>, seed: u64, p: [f64; 3]) -> f64 {
    let f = [floor_f64(p[0]), floor_f64(p[1]), floor_f64(p[2])];
    let t = [p[0] - f[0], p[1] - f[1], p[2] - f[2]];
    let s = [
        t[0] * t[0] * (3.0 - 2.0 * t[0]),
        t[1] * t[1] * (3.0 - 2.0 * t[1]),
        t[2] * t[2] * (3.0 - 2.0 * t[2]),
    ];
    let (x0, y0, z0) = (f[0] as i64, f[1] as i64, f[2] as i64);
    let corner = |x: i64, y: i64, z: i64| -> f64 {
        let h = mix64(
            seed ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                ^ (z as u64).wrapping_mul(0x1656_67B1_9E37_79F9),
        );
        (h >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
    };
    let c = match cache {
        Some(cell) if cell.seed == seed && cell.cell[0] == x0 && cell.cell[1] == y0 && cell.cell[2] == z0 => {
            &cell.corners
        }
        // The next cell along x shares a face with the cached one (corners are x-fastest).
        Some(cell)
            if cell.seed == seed
                && cell.cell[0].wrapping_add(1) == x0
                && cell.cell[1] == y0
                && cell.cell[2] == z0 =>
        {
            let o = cell.corners;
            cell.cell[0] = x0;
            cell.corners = [
                o[1],
                corner(x0 + 1, y0, z0),
                o[3],
                corner(x0 + 1, y0 + 1, z0),
                o[5],
                corner(x0 + 1, y0, z0 + 1),
                o[7],
                corner(x0 + 1, y0 + 1, z0 + 1),
            ];
            &cell.corners
        }
        _ => {
            let corners = [
                corner(x0, y0, z0),
                corner(x0 + 1, y0, z0),
                corner(x0, y0 + 1, z0),
                corner(x0 + 1, y0 + 1, z0),
                corner(x0, y0, z0 + 1),
                corner(x0 + 1, y0, z0 + 1),
                corner(x0, y0 + 1, z0 + 1),
                corner(x0 + 1, y0 + 1, z0 + 1),
            ];
            &cache.insert(NoiseCell { seed, cell: [x0, y0, z0], corners }).corners
        }
    };
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let x00 = lerp(c[0], c[1], s[0]);
    let x10 = lerp(c[2], c[3], s[0]);
    let x01 = lerp(c[4], c[5], s[0]);
    let x11 = lerp(c[6], c[7], s[0]);
    lerp(lerp(x00, x10, s[1]), lerp(x01, x11, s[1]), s[2])
}

/// Two-octave value noise ("tissue texture"), `scale_mm` = size of the coarse blobs.
#[inline]
pub fn texture(seed: u64, p_mm: [f64; 3], scale_mm: f64) -> f64 {
    texture_cached([&mut None, &mut None], seed, p_mm, scale_mm)
}

/// [`texture`] with a cell cache per octave (see [`value_noise_cached`]).
#[inline]
pub fn texture_cached(cache: [&mut Option<NoiseCell>; 2], seed: u64, p_mm: [f64; 3], scale_mm: f64) -> f64 {
    let [c0, c1] = cache;
    let q = [p_mm[0] / scale_mm, p_mm[1] / scale_mm, p_mm[2] / scale_mm];
    let a = value_noise_cached(c0, seed, q);
    let b = value_noise_cached(c1, seed ^ 0xABCD, [q[0] * 2.13, q[1] * 2.13, q[2] * 2.13]);
    0.7 * a + 0.3 * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_normal_has_unit_variance() {
        let n = 200_000u64;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for i in 0..n {
            let v = hash_normal(mix64(i)) as f64;
            s += v;
            s2 += v * v;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn streams_differ_and_repeat() {
        let a: u64 = stream(7, "anatomy").random();
        let b: u64 = stream(7, "nodes").random();
        let c: u64 = stream(7, "anatomy").random();
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn floor_matches_the_library() {
        let mut xs = vec![0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1e15 + 0.5, -1e15 - 0.5, 1e300, -1e300, f64::MAX];
        xs.extend([f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE, -f64::MIN_POSITIVE, 4.5e15, -4.5e15]);
        for i in 0..20_000 {
            let h = mix64(i);
            xs.push(((h >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0f64.powi((i % 70) as i32 - 10));
        }
        for x in xs {
            assert_eq!(floor_f64(x).to_bits(), x.floor().to_bits(), "{x}");
        }
        assert!(floor_f64(f64::NAN).is_nan());
    }

    /// A cell cache shared along rows (and between seeds) gives the uncached values exactly.
    #[test]
    fn cached_noise_is_bit_identical() {
        let mut cache = None;
        let (mut t0, mut t1) = (None, None);
        for j in 0..40 {
            for i in 0..200 {
                let seed = 3 + (i / 50) as u64;
                let p = [i as f64 * 0.37 - 20.0, j as f64 * 0.41 - 7.0, -3.3];
                let a = value_noise(seed, [p[0] / 2.5, p[1] / 2.5, p[2] / 2.5]);
                let b = value_noise_cached(&mut cache, seed, [p[0] / 2.5, p[1] / 2.5, p[2] / 2.5]);
                assert_eq!(a.to_bits(), b.to_bits());
                let a = texture(seed, p, 2.0);
                let b = texture_cached([&mut t0, &mut t1], seed, p, 2.0);
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }

    #[test]
    fn value_noise_is_continuous_and_bounded() {
        for i in 0..1000 {
            let p = [i as f64 * 0.013, i as f64 * 0.007, 3.3];
            let v = value_noise(1, p);
            assert!((-1.0..=1.0).contains(&v));
            let w = value_noise(1, [p[0] + 1e-6, p[1], p[2]]);
            assert!((v - w).abs() < 1e-4);
        }
    }
}
