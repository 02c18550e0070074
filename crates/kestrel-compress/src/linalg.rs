//! The little dense linear algebra reconstruction needs: normal equations and a Cholesky solve.

/// Accumulates XᵀX and XᵀY for least squares, one row of X (and of Y) at a time.
pub struct NormalEquations {
    pub k: usize,
    pub m: usize,
    /// k×k, row-major.
    pub xtx: Vec<f64>,
    /// k×m, row-major.
    pub xty: Vec<f64>,
    pub rows: usize,
}

impl NormalEquations {
    pub fn new(k: usize, m: usize) -> NormalEquations {
        NormalEquations { k, m, xtx: vec![0.0; k * k], xty: vec![0.0; k * m], rows: 0 }
    }

    pub fn add(&mut self, x: &[f64], y: &[f64]) {
        for i in 0..self.k {
            let xi = x[i];
            if xi == 0.0 {
                continue;
            }
            let row = &mut self.xtx[i * self.k..(i + 1) * self.k];
            for (r, &xj) in row.iter_mut().zip(x) {
                *r += xi * xj;
            }
            let out = &mut self.xty[i * self.m..(i + 1) * self.m];
            for (o, &yj) in out.iter_mut().zip(y) {
                *o += xi * yj;
            }
        }
        self.rows += 1;
    }

    /// Ridge solution Θ (k×m, row-major) of min ‖XΘ − Y‖² + λ‖Θ‖², λ = `ridge`·mean(diag XᵀX).
    /// `None` if the system is not positive definite even with the ridge.
    pub fn solve(&self, ridge: f64) -> Option<Vec<f64>> {
        let k = self.k;
        let mean_diag = (0..k).map(|i| self.xtx[i * k + i]).sum::<f64>() / k as f64;
        let lambda = ridge * mean_diag.max(1e-12);
        let mut a = self.xtx.clone();
        for i in 0..k {
            a[i * k + i] += lambda;
        }
        // Cholesky: A = L Lᵀ, L stored in the lower triangle of `a`.
        for j in 0..k {
            let mut d = a[j * k + j];
            for p in 0..j {
                d -= a[j * k + p] * a[j * k + p];
            }
            if d <= 0.0 || !d.is_finite() {
                return None;
            }
            let d = d.sqrt();
            a[j * k + j] = d;
            for i in j + 1..k {
                let mut s = a[i * k + j];
                for p in 0..j {
                    s -= a[i * k + p] * a[j * k + p];
                }
                a[i * k + j] = s / d;
            }
        }
        let mut theta = self.xty.clone();
        for c in 0..self.m {
            // Forward: L z = b; backward: Lᵀ θ = z.
            for i in 0..k {
                let mut s = theta[i * self.m + c];
                for p in 0..i {
                    s -= a[i * k + p] * theta[p * self.m + c];
                }
                theta[i * self.m + c] = s / a[i * k + i];
            }
            for i in (0..k).rev() {
                let mut s = theta[i * self.m + c];
                for p in i + 1..k {
                    s -= a[p * k + i] * theta[p * self.m + c];
                }
                theta[i * self.m + c] = s / a[i * k + i];
            }
        }
        Some(theta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_linear_map() {
        // y = [2a - b + 3, a + 4b] with a constant column for the intercept.
        let mut ne = NormalEquations::new(3, 2);
        for (a, b) in [(1.0, 2.0), (0.5, -1.0), (3.0, 0.0), (-2.0, 1.5), (0.0, 0.0)] {
            ne.add(&[a, b, 1.0], &[2.0 * a - b + 3.0, a + 4.0 * b]);
        }
        let t = ne.solve(1e-12).unwrap();
        let want = [2.0, 1.0, -1.0, 4.0, 3.0, 0.0];
        for (g, w) in t.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{t:?}");
        }
    }
}
