//! The long-term profile: a decayed average of ended sessions' interest vectors, blended into the session's
//! interest vector at ranking time. The JS API keeps the vector (in memory or IndexedDB); the maths is here.

use crate::error::{Error, Result};

/// A long-term interest vector (for example a decayed average of past sessions' interest vectors, see
/// [`fold`]) and the share it takes of the ranking vector, in `[0, 1]`.
#[derive(Clone, Copy, Debug)]
pub struct Profile<'a> {
    pub vector: &'a [f32],
    pub weight: f32,
}

impl Profile<'_> {
    /// Checks the profile against the model's width `dim`: the right width, finite values and a weight in
    /// `[0, 1]`.
    pub fn check(&self, dim: usize) -> Result<()> {
        if self.vector.len() != dim {
            return Err(Error::Dimension {
                context: "the profile vector".into(),
                expected: dim,
                found: self.vector.len(),
            });
        }
        if !(0.0..=1.0).contains(&self.weight) || self.vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "profile",
                "the weight must be in [0, 1] and the vector finite",
            ));
        }
        Ok(())
    }
}

/// The profile after a session ended with interest vector `session`: `decay * old + (1 - decay) * session`.
/// A missing `old`, or one that does not fit (another width, as after a change of model, or a value that is
/// not finite), is replaced by `session`. `decay` is in `[0, 1]`.
pub fn fold(old: Option<&[f32]>, session: &[f32], decay: f32) -> Result<Vec<f32>> {
    if !(0.0..=1.0).contains(&decay) {
        return Err(Error::invalid("decay", "must be a number in [0, 1]"));
    }
    if session.is_empty() || session.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "session",
            "an interest vector must be non-empty and finite",
        ));
    }
    Ok(match old {
        Some(old) if old.len() == session.len() && old.iter().all(|x| x.is_finite()) => old
            .iter()
            .zip(session)
            .map(|(o, s)| decay * o + (1.0 - decay) * s)
            .collect(),
        _ => session.to_vec(),
    })
}

/// The vector that ranks the catalogue: the session's interest vector blended with the profile,
/// `(1 - weight) * session + weight * profile`; the session's alone when there is no profile or its weight
/// is 0; the profile's alone when the session has no usable event; `None` when there is neither (rank by
/// popularity).
pub fn blend(session: Option<&[f32]>, profile: Option<Profile<'_>>) -> Option<Vec<f32>> {
    let profile = profile.filter(|p| p.weight > 0.0);
    match (session, profile) {
        (Some(s), Some(p)) => Some(
            s.iter()
                .zip(p.vector)
                .map(|(a, b)| (1.0 - p.weight) * a + p.weight * b)
                .collect(),
        ),
        (Some(s), None) => Some(s.to_vec()),
        (None, Some(p)) => Some(p.vector.to_vec()),
        (None, None) => None,
    }
}

/// A stored profile's values (numbers read back from storage, so f64) as the vector [`Profile`] takes, or
/// `None` when they cannot be one for a model of width `dim`: another width, or a value that is not finite
/// once it is an f32 (`1e39` is finite as an f64 and infinite as an f32).
pub fn from_stored(values: &[f64], dim: usize) -> Option<Vec<f32>> {
    if values.len() != dim || dim == 0 {
        return None;
    }
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_decays_the_old_profile() {
        let v = fold(Some(&[1.0, 0.0]), &[0.0, 1.0], 0.75).unwrap();
        assert_eq!(v, [0.75, 0.25]);
        // decay 1 keeps the old profile, decay 0 takes the session.
        assert_eq!(
            fold(Some(&[1.0, 2.0]), &[3.0, 4.0], 1.0).unwrap(),
            [1.0, 2.0]
        );
        assert_eq!(
            fold(Some(&[1.0, 2.0]), &[3.0, 4.0], 0.0).unwrap(),
            [3.0, 4.0]
        );
    }

    #[test]
    fn fold_replaces_a_missing_or_unfit_profile() {
        assert_eq!(fold(None, &[3.0, 4.0], 0.7).unwrap(), [3.0, 4.0]);
        assert_eq!(fold(Some(&[1.0]), &[3.0, 4.0], 0.7).unwrap(), [3.0, 4.0]);
        assert_eq!(
            fold(Some(&[f32::INFINITY, 1.0]), &[3.0, 4.0], 0.7).unwrap(),
            [3.0, 4.0]
        );
    }

    #[test]
    fn fold_refuses_bad_inputs() {
        for decay in [-0.1, 1.5, f32::NAN] {
            let e = fold(None, &[1.0], decay).unwrap_err();
            assert_eq!((e.code(), e.field()), ("INVALID_ARGUMENT", Some("decay")));
        }
        assert!(fold(None, &[], 0.5).is_err());
        assert!(fold(None, &[f32::NAN], 0.5).is_err());
    }

    #[test]
    fn blend_mixes_session_and_profile() {
        let p = |weight| Profile {
            vector: &[0.0, 1.0],
            weight,
        };
        assert_eq!(
            blend(Some(&[1.0, 0.0]), Some(p(0.25))).unwrap(),
            [0.75, 0.25]
        );
        assert_eq!(blend(Some(&[1.0, 0.0]), Some(p(0.0))).unwrap(), [1.0, 0.0]);
        assert_eq!(blend(Some(&[1.0, 0.0]), None).unwrap(), [1.0, 0.0]);
        assert_eq!(blend(None, Some(p(0.3))).unwrap(), [0.0, 1.0]);
        assert_eq!(blend(None, Some(p(0.0))), None);
        assert_eq!(blend(None, None), None);
    }

    #[test]
    fn profiles_are_checked() {
        let ok = Profile {
            vector: &[0.5, 0.5],
            weight: 0.3,
        };
        assert!(ok.check(2).is_ok());
        assert_eq!(ok.check(3).unwrap_err().code(), "DIM_MISMATCH");
        for bad in [
            Profile { weight: 1.5, ..ok },
            Profile {
                weight: f32::NAN,
                ..ok
            },
            Profile {
                vector: &[f32::INFINITY, 0.0],
                ..ok
            },
        ] {
            assert_eq!(bad.check(2).unwrap_err().code(), "INVALID_ARGUMENT");
        }
    }

    #[test]
    fn stored_profiles_must_be_finite_as_f32() {
        assert_eq!(from_stored(&[0.5, -2.0], 2), Some(vec![0.5, -2.0]));
        assert_eq!(from_stored(&[1e39, 0.0], 2), None, "overflows an f32");
        assert_eq!(from_stored(&[f64::NAN, 0.0], 2), None);
        assert_eq!(from_stored(&[0.5], 2), None, "another width");
        assert_eq!(from_stored(&[], 0), None);
    }
}
