//! Durations as pipelines write them: `500us`, `100ms`, `1.5s`, `10m`, `1h`.

use std::time::Duration;

/// The units a duration may carry, longest suffix first so `ms` wins over `s`.
const UNITS: [(&str, f64); 6] = [
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// What a valid duration looks like, for error messages.
pub const DURATION_HINT: &str = "a number with a unit: 500us, 100ms, 1.5s, 10m or 1h";

/// Parses a duration; `None` when the text is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = UNITS.iter().find_map(|(unit, scale)| {
        let number = text.strip_suffix(unit)?;
        // `10ms` must not be read as `10m` + `s`.
        if number.ends_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        Some((number.trim(), *scale))
    })?;
    if number.is_empty() || number.starts_with(['+', '-']) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(value * scale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 2 s "), Some(Duration::from_secs(2)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "ms",
            "-1s",
            "10 minutes",
            "1.2.3s",
            "1d",
            "NaNs",
            "infs",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should be rejected");
        }
    }
}
