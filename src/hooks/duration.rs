//! Go duration strings: parsing with the exact grammar of Go's `time.ParseDuration`,
//! rendering like Go's `Duration.String`, and the timeout policy shared by annotation
//! and rule hooks (default 30s, non-positive → default, clamp at 4h).
//!
//! Owns nothing else: no clock, no I/O.

use std::fmt;
use std::time::Duration;

/// Timeout used when a hook sets none, sets zero or a negative value, or sets an invalid one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest timeout a hook may have; larger values are clamped (as Velero's `main` does).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);

/// A signed duration as Go's `time.Duration` can express it (`-1s` parses in Go).
///
/// `negative` is never set for a zero magnitude (`-0` is plain zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration {
    /// True for durations below zero.
    pub negative: bool,
    /// Absolute value; at most 2^63 ns (Go's `math.MinInt64`).
    pub magnitude: Duration,
}

impl GoDuration {
    fn from_nanos(negative: bool, nanos: u64) -> Self {
        GoDuration {
            negative: negative && nanos != 0,
            magnitude: Duration::from_nanos(nanos),
        }
    }
}

/// Why a string is not a Go duration. The texts follow Go's `time` package errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (also the empty string).
    #[error("time: invalid duration {input:?}")]
    Invalid {
        /// The whole string that was parsed.
        input: String,
    },
    /// A number without a unit, such as `"300"` (only `"0"` may omit the unit).
    #[error("time: missing unit in duration {input:?}")]
    MissingUnit {
        /// The whole string that was parsed.
        input: String,
    },
    /// A unit other than `ns us µs μs ms s m h`, such as `d`.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The offending unit.
        unit: String,
        /// The whole string that was parsed.
        input: String,
    },
    /// The value does not fit in Go's int64 nanoseconds (about 292 years).
    #[error("time: invalid duration {input:?} (out of range)")]
    OutOfRange {
        /// The whole string that was parsed.
        input: String,
    },
}

/// Parses `input` exactly as Go's `time.ParseDuration` does.
///
/// Accepts an optional sign, then one or more `<number><unit>` terms where the number may have a
/// fraction (`1.5h`, `.5s`, `5.s`) and units are `ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`,
/// `s`, `m`, `h`; `"0"` (optionally signed) is the only unit-less value. Whitespace is not allowed.
pub fn parse_go_duration(input: &str) -> Result<GoDuration, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    let out_of_range = || DurationError::OutOfRange {
        input: input.to_owned(),
    };

    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some(&sign @ (b'-' | b'+')) = s.first() {
        negative = sign == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(GoDuration::from_nanos(false, 0));
    }
    if s.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (whole, rest) = leading_int(s).ok_or_else(out_of_range)?;
        s = rest;
        let has_whole = before != s.len();

        let (mut fraction, mut scale, mut has_fraction) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let (f, sc, rest) = leading_fraction(s);
            (fraction, scale, s) = (f, sc, rest);
            has_fraction = before != s.len();
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }

        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        // Units end before an ASCII byte, so the split is on a char boundary.
        let unit_text = String::from_utf8_lossy(&s[..unit_len]).into_owned();
        s = &s[unit_len..];
        let unit = unit_nanos(&unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.clone(),
            input: input.to_owned(),
        })?;

        if whole > LIMIT / unit {
            return Err(out_of_range());
        }
        let mut term = whole * unit;
        if fraction > 0 {
            // Same float arithmetic as Go, so fractions of hours round identically.
            term += (fraction as f64 * (unit as f64 / scale)) as u64;
            if term > LIMIT {
                return Err(out_of_range());
            }
        }
        total = total.checked_add(term).ok_or_else(out_of_range)?;
        if total > LIMIT {
            return Err(out_of_range());
        }
    }
    if !negative && total > LIMIT - 1 {
        return Err(out_of_range());
    }
    Ok(GoDuration::from_nanos(negative, total))
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 60 * 60 * 1_000_000_000,
        _ => return None,
    })
}

/// Consumes leading digits; `None` on overflow past 2^63, as Go's `leadingInt`.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut x: u64 = 0;
    for &c in &s[..digits] {
        if x > (1 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > 1 << 63 {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// Consumes fraction digits, ignoring those beyond int64 precision, as Go's `leadingFraction`.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &c in &s[..digits] {
        if overflow {
            continue;
        }
        if x > ((1u64 << 63) - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > 1 << 63 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

/// Renders a duration like Go's `Duration.String`: `30s`, `2m30s`, `1h0m0s`, `250ms`, `1.5µs`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}\u{00b5}s", with_fraction(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", with_fraction(nanos, 6));
    }
    let seconds = with_fraction(nanos % 60_000_000_000, 9);
    let total_minutes = nanos / 60_000_000_000;
    if total_minutes == 0 {
        return format!("{seconds}s");
    }
    let hours = total_minutes / 60;
    let minutes = total_minutes % 60;
    if hours == 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{hours}h{minutes}m{seconds}s")
    }
}

/// `value / 10^precision` with the remainder as a decimal fraction without trailing zeros.
fn with_fraction(value: u128, precision: u32) -> String {
    let divisor = 10u128.pow(precision);
    let (whole, fraction) = (value / divisor, value % divisor);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// How the timeout policy changed a requested value (for a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutAdjustment {
    /// The value was negative; the default was used instead.
    Negative,
    /// The value exceeded [`MAX_TIMEOUT`] and was clamped to it.
    Clamped,
}

/// Applies the timeout policy: zero → default (silently, zero means "unset" in Velero),
/// negative → default, above 4h → 4h.
pub(crate) fn effective_timeout(requested: GoDuration) -> (Duration, Option<TimeoutAdjustment>) {
    if requested.negative {
        (DEFAULT_TIMEOUT, Some(TimeoutAdjustment::Negative))
    } else if requested.magnitude.is_zero() {
        (DEFAULT_TIMEOUT, None)
    } else if requested.magnitude > MAX_TIMEOUT {
        (MAX_TIMEOUT, Some(TimeoutAdjustment::Clamped))
    } else {
        (requested.magnitude, None)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(&format_go_duration(self.magnitude))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1;
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;

    fn positive(nanos: u64) -> GoDuration {
        GoDuration::from_nanos(false, nanos)
    }

    fn negative(nanos: u64) -> GoDuration {
        GoDuration::from_nanos(true, nanos)
    }

    #[test]
    fn parses_go_reference_table_of_valid_durations() {
        let cases: &[(&str, GoDuration)] = &[
            ("0", positive(0)),
            ("5s", positive(5 * S)),
            ("30s", positive(30 * S)),
            ("1478s", positive(1478 * S)),
            ("-5s", negative(5 * S)),
            ("+5s", positive(5 * S)),
            ("-0", positive(0)),
            ("+0", positive(0)),
            ("5.0s", positive(5 * S)),
            ("5.6s", positive(5 * S + 600 * MS)),
            ("5.s", positive(5 * S)),
            (".5s", positive(500 * MS)),
            ("1.0s", positive(S)),
            ("1.00s", positive(S)),
            ("1.004s", positive(S + 4 * MS)),
            ("1.0040s", positive(S + 4 * MS)),
            ("100.00100s", positive(100 * S + MS)),
            ("10ns", positive(10 * NS)),
            ("11us", positive(11 * US)),
            ("12\u{00b5}s", positive(12 * US)),
            ("12\u{03bc}s", positive(12 * US)),
            ("13ms", positive(13 * MS)),
            ("14s", positive(14 * S)),
            ("15m", positive(15 * M)),
            ("16h", positive(16 * H)),
            ("3h30m", positive(3 * H + 30 * M)),
            ("10.5s4m", positive(4 * M + 10 * S + 500 * MS)),
            ("-2m3.4s", negative(2 * M + 3 * S + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                positive(H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
            ),
            ("39h9m14.425s", positive(39 * H + 9 * M + 14 * S + 425 * MS)),
            ("52763797000ns", positive(52_763_797_000)),
            ("0.3333333333333333333h", positive(20 * M)),
            ("9007199254740993ns", positive((1 << 53) + 1)),
            ("9223372036854775807ns", positive((1 << 63) - 1)),
            ("9223372036854775.807us", positive((1 << 63) - 1)),
            ("9223372036s854ms775us807ns", positive((1 << 63) - 1)),
            ("-9223372036854775808ns", negative(1 << 63)),
            ("-9223372036854775.808us", negative(1 << 63)),
            ("0.100000000000000000000h", positive(6 * M)),
            (
                "0.830103483285477580700h",
                positive(49 * M + 48 * S + 372_539_827),
            ),
            ("1.5h", positive(H + 30 * M)),
            ("250ms", positive(250 * MS)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_go_duration(input), Ok(*expected), "input {input:?}");
        }
    }

    #[test]
    fn rejects_go_reference_table_of_invalid_durations() {
        let cases = [
            "", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "1s ", " 1s", "1 s", "1S", "1sec",
            "1h-1m", "--1s", "1.2.3s", "hello",
        ];
        for input in cases {
            assert!(
                parse_go_duration(input).is_err(),
                "input {input:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_values_beyond_int64_nanoseconds() {
        for input in [
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "-9223372036854775809ns",
            "3000000h",
        ] {
            assert_eq!(
                parse_go_duration(input),
                Err(DurationError::OutOfRange {
                    input: input.to_owned()
                }),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn bare_number_error_says_missing_unit_like_go() {
        let err = parse_go_duration("300").unwrap_err();
        assert_eq!(err.to_string(), r#"time: missing unit in duration "300""#);
    }

    #[test]
    fn unknown_unit_error_names_the_unit_like_go() {
        let err = parse_go_duration("1d").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"time: unknown unit "d" in duration "1d""#
        );
    }

    #[test]
    fn empty_string_error_is_invalid_duration_like_go() {
        let err = parse_go_duration("").unwrap_err();
        assert_eq!(err.to_string(), r#"time: invalid duration """#);
    }

    #[test]
    fn formats_durations_like_go_duration_string() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{00b5}s"),
            (2_200 * US, "2.2ms"),
            (250 * MS, "250ms"),
            (30 * S, "30s"),
            (3 * S + 500 * MS, "3.5s"),
            (90 * S, "1m30s"),
            (150 * S, "2m30s"),
            (60 * S, "1m0s"),
            (H, "1h0m0s"),
            (4 * H, "4h0m0s"),
            (H + 2 * M + 3 * S + 4 * MS, "1h2m3.004s"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(format_go_duration(Duration::from_nanos(*nanos)), *expected);
        }
    }

    #[test]
    fn negative_go_duration_displays_with_sign() {
        assert_eq!(negative(2 * M + 3 * S).to_string(), "-2m3s");
    }

    #[test]
    fn zero_timeout_becomes_default_without_adjustment_note() {
        assert_eq!(effective_timeout(positive(0)), (DEFAULT_TIMEOUT, None));
    }

    #[test]
    fn negative_timeout_becomes_default_with_note() {
        assert_eq!(
            effective_timeout(negative(S)),
            (DEFAULT_TIMEOUT, Some(TimeoutAdjustment::Negative))
        );
    }

    #[test]
    fn timeout_above_four_hours_is_clamped() {
        assert_eq!(
            effective_timeout(positive(4 * H + 1)),
            (MAX_TIMEOUT, Some(TimeoutAdjustment::Clamped))
        );
    }

    #[test]
    fn timeout_of_exactly_four_hours_is_kept() {
        assert_eq!(effective_timeout(positive(4 * H)), (MAX_TIMEOUT, None));
    }

    #[test]
    fn positive_timeout_within_limits_is_kept() {
        assert_eq!(
            effective_timeout(positive(2 * M + 30 * S)),
            (Duration::from_secs(150), None)
        );
    }
}
