//! Expected outputs and the tolerance check against them.

/// Absolute tolerance added to every comparison, so that results that cancel to
/// (nearly) zero are not held to a relative bound they cannot meet.
const ABS_TOL: f64 = 1e-6;

/// What the reference computes for each output element: the exact (f64) value after bias and
/// activation, and the magnitude |bias| + sum |x*w| used to scale the tolerance.
#[derive(Clone, Debug)]
pub struct Expected {
    /// Batch size of the output.
    pub n: usize,
    /// Output height.
    pub h: usize,
    /// Output width.
    pub w: usize,
    /// Output channels.
    pub c: usize,
    /// The exact values, dense NHWC, after bias and activation.
    pub value: Vec<f64>,
    /// Per element, `|bias| + sum |x * w|` before activation (the clamps are 1-Lipschitz,
    /// so the pre-activation magnitude also bounds the error after activation).
    pub magnitude: Vec<f64>,
}

impl Expected {
    /// Compares `got` (dense NHWC, same shape) with the expected values: element i passes when
    /// both are NaN, or both are the same infinity, or |got - value| <= rel_tol * magnitude + abs_tol
    /// (abs_tol = 1e-6; rel_tol is the caller's, typically ~1e-5 for f32 with FMA and reassociation).
    ///
    /// A NaN or infinity on only one side fails. The one exception: `got` may be infinite where
    /// the exact value is finite but rounds to that same infinity in `f32` (it is beyond `f32::MAX`).
    ///
    /// Returns Err with a message naming the first failing (n, y, x, c), the got and expected
    /// values, and how many elements failed; also Err if `got` has the wrong length.
    pub fn check(&self, got: &[f32], rel_tol: f64) -> Result<(), String> {
        let len = self.n * self.h * self.w * self.c;
        if got.len() != len {
            return Err(format!(
                "output has {} elements, expected {}x{}x{}x{} = {len}",
                got.len(),
                self.n,
                self.h,
                self.w,
                self.c
            ));
        }
        let c = self.c;
        self.check_strided(got, c, self.w * c, self.h * self.w * c, rel_tol)
    }

    /// As `check`, but `got` is read through strides (pixel, row, batch) in floats, so outputs
    /// written into a larger buffer can be checked: element `(n, y, x, c)` is read from
    /// `got[n * batch + y * row + x * pixel + c]`.
    ///
    /// Returns Err if the last element lies beyond `got`.
    pub fn check_strided(
        &self,
        got: &[f32],
        pixel: usize,
        row: usize,
        batch: usize,
        rel_tol: f64,
    ) -> Result<(), String> {
        assert!(
            rel_tol >= 0.0,
            "rel_tol must be non-negative, got {rel_tol}"
        );
        assert_eq!(self.value.len(), self.n * self.h * self.w * self.c);
        assert_eq!(self.magnitude.len(), self.value.len());
        if self.value.is_empty() {
            return Ok(());
        }
        let last = (self.n - 1) * batch + (self.h - 1) * row + (self.w - 1) * pixel + (self.c - 1);
        if last >= got.len() {
            return Err(format!(
                "output buffer has {} floats, but element ({}, {}, {}, {}) at strides \
                 (pixel {pixel}, row {row}, batch {batch}) is at offset {last}",
                got.len(),
                self.n - 1,
                self.h - 1,
                self.w - 1,
                self.c - 1
            ));
        }

        let mut failures = 0usize;
        let mut first: Option<String> = None;
        let mut i = 0;
        for n in 0..self.n {
            for y in 0..self.h {
                for x in 0..self.w {
                    for c in 0..self.c {
                        let g = got[n * batch + y * row + x * pixel + c];
                        let want = self.value[i];
                        let mag = self.magnitude[i];
                        i += 1;
                        if element_passes(g, want, mag, rel_tol) {
                            continue;
                        }
                        failures += 1;
                        if first.is_none() {
                            let tol = rel_tol * mag + ABS_TOL;
                            first = Some(format!(
                                "({n}, {y}, {x}, {c}): got {g:e}, expected {want:e} \
                                 (|diff| {:e} > tolerance {tol:e} = {rel_tol:e} * magnitude {mag:e} + {ABS_TOL:e})",
                                (f64::from(g) - want).abs()
                            ));
                        }
                    }
                }
            }
        }
        match first {
            None => Ok(()),
            Some(msg) => Err(format!(
                "{failures} of {} elements of the {}x{}x{}x{} output failed; first at {msg}",
                self.value.len(),
                self.n,
                self.h,
                self.w,
                self.c
            )),
        }
    }
}

/// Whether one computed element `got` is acceptable for the exact value `want`.
fn element_passes(got: f32, want: f64, magnitude: f64, rel_tol: f64) -> bool {
    let g = f64::from(got);
    if g.is_nan() || want.is_nan() {
        return g.is_nan() && want.is_nan();
    }
    if g.is_infinite() || want.is_infinite() {
        // Same infinity, or an f32 overflow of a finite value beyond f32::MAX.
        return g == want || (want as f32) == got;
    }
    (g - want).abs() <= rel_tol * magnitude + ABS_TOL
}

#[cfg(test)]
mod tests {
    use super::Expected;

    /// A 1 x 1 x 2 x 2 expectation with the given values and magnitudes.
    fn expected(value: [f64; 4], magnitude: [f64; 4]) -> Expected {
        Expected {
            n: 1,
            h: 1,
            w: 2,
            c: 2,
            value: value.to_vec(),
            magnitude: magnitude.to_vec(),
        }
    }

    #[test]
    fn passes_exact_and_within_tolerance() {
        let e = expected([1.0, -2.0, 100.0, 0.0], [1.0, 2.0, 100.0, 50.0]);
        assert_eq!(e.check(&[1.0, -2.0, 100.0, 0.0], 1e-5), Ok(()));
        // Tolerances: 1e-5 * [1, 2, 100, 50] + 1e-6 = [1.1e-5, 2.1e-5, 1.000001e-3, 5.01e-4].
        assert_eq!(e.check(&[1.00001, -2.00002, 100.0009, -5e-4], 1e-5), Ok(()));
    }

    #[test]
    fn fails_when_one_element_is_off() {
        let e = expected([1.0, -2.0, 100.0, 0.0], [1.0, 2.0, 100.0, 50.0]);
        // Element 2 is (0, 0, 1, 0): off by 0.002 > 1e-5 * 100 + 1e-6 = 0.001001.
        let err = e.check(&[1.0, -2.0, 100.002, 0.0], 1e-5).unwrap_err();
        assert!(err.contains("1 of 4 elements"), "{err}");
        assert!(err.contains("(0, 0, 1, 0)"), "{err}");
        assert!(err.contains("got 1.00002e2"), "{err}");
        assert!(err.contains("expected 1e2"), "{err}");
    }

    #[test]
    fn counts_every_failure_and_reports_the_first() {
        let e = expected([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]);
        let err = e.check(&[1.0, 2.5, 3.0, 5.0], 1e-5).unwrap_err();
        assert!(err.contains("2 of 4 elements"), "{err}");
        assert!(err.contains("(0, 0, 0, 1)"), "{err}");
    }

    #[test]
    fn absolute_tolerance_covers_cancellation() {
        // value 0 with magnitude 0: only the 1e-6 absolute tolerance applies.
        let e = expected([0.0; 4], [0.0; 4]);
        assert_eq!(e.check(&[1e-7, -1e-6, 0.0, 5e-7], 1e-5), Ok(()));
        assert!(e.check(&[0.0, 0.0, 0.0, 2e-6], 1e-5).is_err());
    }

    #[test]
    fn nan_and_infinity_must_match_exactly() {
        let inf = f64::INFINITY;
        let e = expected([f64::NAN, inf, -inf, 1.0], [f64::NAN, inf, inf, 1.0]);
        assert_eq!(
            e.check(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0], 1e-5),
            Ok(())
        );
        // NaN where a number is expected, a number where NaN is expected.
        assert!(e
            .check(&[0.0, f32::INFINITY, f32::NEG_INFINITY, 1.0], 1e-5)
            .is_err());
        assert!(e
            .check(
                &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN],
                1e-5
            )
            .is_err());
        // Wrong-signed infinity; a finite value where infinity is expected, even though
        // the infinite magnitude would make the tolerance infinite.
        assert!(e
            .check(&[f32::NAN, f32::NEG_INFINITY, f32::NEG_INFINITY, 1.0], 1e-5)
            .is_err());
        assert!(e
            .check(&[f32::NAN, f32::MAX, f32::NEG_INFINITY, 1.0], 1e-5)
            .is_err());
        // Infinity where a finite value is expected.
        assert!(e
            .check(
                &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY],
                1e-5
            )
            .is_err());
    }

    #[test]
    fn f32_overflow_of_a_finite_value_is_accepted() {
        // 1e39 is finite in f64 but rounds to +inf in f32.
        let e = expected([1e39, 1.0, 1.0, 1.0], [1e39, 1.0, 1.0, 1.0]);
        assert_eq!(e.check(&[f32::INFINITY, 1.0, 1.0, 1.0], 1e-5), Ok(()));
        assert!(e.check(&[f32::NEG_INFINITY, 1.0, 1.0, 1.0], 1e-5).is_err());
    }

    #[test]
    fn wrong_length_is_an_error() {
        let e = expected([0.0; 4], [0.0; 4]);
        assert!(e.check(&[0.0; 3], 1e-5).unwrap_err().contains("3 elements"));
        assert!(e.check(&[0.0; 5], 1e-5).is_err());
    }

    #[test]
    fn strided_reads_the_right_elements() {
        // 2 x 2 x 2 x 1 expectation 1..8, stored with pixel stride 2 (one pad float per
        // pixel), row stride 5 (one pad float per row) and batch stride 11 (one per image).
        let e = Expected {
            n: 2,
            h: 2,
            w: 2,
            c: 1,
            value: (1..=8).map(f64::from).collect(),
            magnitude: (1..=8).map(f64::from).collect(),
        };
        let p = -99.0; // padding, never read
        #[rustfmt::skip]
        let got = [
            1.0, p, 2.0, p, p,   // image 0, row 0: offsets 0, 2
            3.0, p, 4.0, p, p,   // image 0, row 1: offsets 5, 7
            p,
            5.0, p, 6.0, p, p,   // image 1, row 0: offsets 11, 13
            7.0, p, 8.0,         // image 1, row 1: offsets 16, 18
        ];
        assert_eq!(e.check_strided(&got, 2, 5, 11, 1e-5), Ok(()));

        let mut bad = got;
        bad[16] = 7.5; // (1, 1, 0, 0)
        let err = e.check_strided(&bad, 2, 5, 11, 1e-5).unwrap_err();
        assert!(err.contains("(1, 1, 0, 0)"), "{err}");

        // Too short for the last element at offset 18.
        assert!(e.check_strided(&got[..18], 2, 5, 11, 1e-5).is_err());
    }

    #[test]
    fn empty_output_passes() {
        let e = Expected {
            n: 0,
            h: 3,
            w: 3,
            c: 4,
            value: vec![],
            magnitude: vec![],
        };
        assert_eq!(e.check(&[], 1e-5), Ok(()));
        assert_eq!(e.check_strided(&[], 4, 12, 36, 1e-5), Ok(()));
    }
}
