//! Number formatting shared by every renderer.

/// A duration in seconds with a unit that keeps 3–4 significant digits.
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    let (value, unit) = match secs.abs() {
        s if s >= 1.0 => (secs, "s"),
        s if s >= 1e-3 => (secs * 1e3, "ms"),
        s if s >= 1e-6 => (secs * 1e6, "µs"),
        _ => (secs * 1e9, "ns"),
    };
    let decimals = match value.abs() {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    format!("{value:.decimals$} {unit}")
}

/// A size in bytes with a binary unit.
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A rate in items per second with an SI prefix (`812.5/s`, `1.25 M/s`).
pub fn format_rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        return "—".into();
    }
    let (value, prefix) = match per_sec.abs() {
        r if r >= 1e9 => (per_sec / 1e9, " G"),
        r if r >= 1e6 => (per_sec / 1e6, " M"),
        r if r >= 1e3 => (per_sec / 1e3, " k"),
        _ => (per_sec, ""),
    };
    let decimals = match value.abs() {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    format!("{value:.decimals$}{prefix}/s")
}

/// A count: an integer as an integer, anything else with a decimal.
pub fn format_count(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

/// A value in its metric's unit (`s`, `B`, `1/s`, `count`).
pub fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "B" => format_bytes(value),
        "1/s" => format_rate(value),
        "count" => format_count(value),
        _ => format_duration(value),
    }
}

/// A signed percentage change.
pub fn format_pct(pct: f64) -> String {
    format!("{pct:+.1}%")
}

/// Below this a p-value is shown as a bound: f64 rounding rules the digits.
const P_FLOOR: f64 = 1e-16;

/// A p-value: fixed notation down to 0.001, scientific below.
pub fn format_p(p: f64) -> String {
    if p < P_FLOOR {
        "<1e-16".to_string()
    } else if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_units() {
        assert_eq!(format_duration(0.0215), "21.50 ms");
        assert_eq!(format_duration(1.5), "1.500 s");
        assert_eq!(format_duration(2.5e-6), "2.500 µs");
        assert_eq!(format_duration(0.1234), "123.4 ms");
        assert_eq!(format_duration(f64::NAN), "—");
    }

    #[test]
    fn rates_pick_prefixes() {
        assert_eq!(format_rate(812.5), "812.5/s");
        assert_eq!(format_rate(1_250_000.0), "1.250 M/s");
        assert_eq!(format_rate(12_340.0), "12.34 k/s");
        assert_eq!(format_rate(f64::NAN), "—");
    }

    #[test]
    fn bytes_pick_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(3.5 * 1024.0 * 1024.0), "3.5 MiB");
    }

    #[test]
    fn percentages_and_p_values() {
        assert_eq!(format_pct(25.04), "+25.0%");
        assert_eq!(format_pct(-3.0), "-3.0%");
        assert_eq!(format_p(0.5), "0.500");
        assert_eq!(format_p(1.3e-8), "1.3e-8");
        assert_eq!(format_p(0.0), "<1e-16");
    }
}
