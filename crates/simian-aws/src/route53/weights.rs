//! The weights of a shift: pure arithmetic, no calls.

use crate::route53::WeightsRevert;

/// Route53's largest weight.
pub const MAX_WEIGHT: i64 = 255;

/// The (from, to) weights with `share` (0 to 1) of from's original weight
/// moved to `to`: from' = round(wf·(1−s)), to' = wt + (wf − from'), so the
/// total is kept. When to' would pass [`MAX_WEIGHT`], both are scaled down
/// together (the ratio, hence the traffic split, is kept; a from' above 0
/// stays above 0, as to' is at most 2·255, so only share 1 empties `from`).
/// At share 0: exactly the original weights. A share outside 0..=1 is
/// clamped; NaN counts as 0.
pub fn weights_at(original: &WeightsRevert, share: f64) -> (i64, i64) {
    let share = if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 1.0)
    };
    let (wf, wt) = (original.from.weight.max(0), original.to.weight.max(0));
    let from = ((wf as f64) * (1.0 - share)).round() as i64;
    let to = wt + (wf - from);
    if to <= MAX_WEIGHT {
        return (from, to);
    }
    let scaled = ((from as f64) * (MAX_WEIGHT as f64) / (to as f64)).round() as i64;
    (scaled, MAX_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route53::SetWeight;

    fn original(from: i64, to: i64) -> WeightsRevert {
        WeightsRevert {
            endpoint_url: None,
            zone_id: "Z1".into(),
            name: "api.example.com.".into(),
            record_type: "A".into(),
            from: SetWeight {
                set_identifier: "us-east".into(),
                weight: from,
            },
            to: SetWeight {
                set_identifier: "us-west".into(),
                weight: to,
            },
        }
    }

    #[test]
    fn share_zero_is_the_original_weights() {
        for (f, t) in [(100, 50), (0, 0), (255, 255), (1, 0), (7, 200)] {
            assert_eq!(weights_at(&original(f, t), 0.0), (f, t));
        }
    }

    #[test]
    fn weight_moves_and_the_total_is_kept_below_the_cap() {
        let o = original(100, 50);
        assert_eq!(weights_at(&o, 0.5), (50, 100));
        assert_eq!(weights_at(&o, 1.0), (0, 150));
        assert_eq!(weights_at(&o, 0.1), (90, 60));
        assert_eq!(weights_at(&o, 0.25), (75, 75));
        assert_eq!(weights_at(&o, 0.333), (67, 83), "rounded");
    }

    #[test]
    fn above_255_both_are_scaled_keeping_the_ratio() {
        let o = original(200, 100);
        assert_eq!(weights_at(&o, 0.5), (100, 200), "under the cap: as is");
        assert_eq!(weights_at(&o, 0.9), (18, 255), "20/280 scaled");
        assert_eq!(weights_at(&o, 1.0), (0, 255));
        let (f, t) = weights_at(&original(255, 255), 0.2); // 204/306 unscaled
        assert_eq!((f, t), (170, 255));
        assert!((204.0 / 306.0 - f as f64 / t as f64).abs() < 0.005);
    }

    #[test]
    fn scaling_never_rounds_the_last_of_from_away() {
        // 1/509 unscaled: 0.501 after scaling, still 1.
        assert_eq!(weights_at(&original(255, 255), 254.0 / 255.0), (1, 255));
    }

    #[test]
    fn out_of_range_shares_are_clamped() {
        let o = original(100, 50);
        assert_eq!(weights_at(&o, -0.5), (100, 50));
        assert_eq!(weights_at(&o, 1.5), (0, 150));
        assert_eq!(weights_at(&o, f64::NAN), (100, 50));
    }
}
