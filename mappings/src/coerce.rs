//! Conversions of legacy values: text amounts with separators, `YYYYMMDD` dates, local times,
//! fixed-point decimals, Y/N flags. Each returns the canonical JSON value or a message naming
//! what was wrong with the value.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone as _};
use serde_json::Value as J;

use crate::spec::Conversion;

/// The UTC offset of a time zone given as `+09:00`, `UTC`, or one of the zones of the reference
/// domains (fixed offsets: these zones have no daylight saving time).
#[must_use]
pub fn parse_offset(tz: &str) -> Option<FixedOffset> {
    match tz {
        "UTC" | "Z" | "Etc/UTC" => FixedOffset::east_opt(0),
        "Asia/Seoul" | "Asia/Tokyo" | "KST" | "JST" => FixedOffset::east_opt(9 * 3600),
        "Asia/Shanghai" | "Asia/Singapore" | "Asia/Hong_Kong" | "Asia/Taipei" => {
            FixedOffset::east_opt(8 * 3600)
        }
        _ => {
            let (sign, rest) = match tz.as_bytes().first()? {
                b'+' => (1, &tz[1..]),
                b'-' => (-1, &tz[1..]),
                _ => return None,
            };
            let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
            let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
            FixedOffset::east_opt(sign * secs)
        }
    }
}

/// The value as text, for text conversions (numbers and booleans as written).
fn text(v: &J) -> Option<String> {
    match v {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(v: &J) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// Options of a conversion.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Date or time format.
    pub format: Option<&'a str>,
    /// Offset of local times.
    pub offset: Option<FixedOffset>,
    /// Decimal scale.
    pub scale: Option<u32>,
    /// Implied decimals of a decimal written as a whole number.
    pub implied_decimals: Option<u32>,
}

/// Converts `v` (never null: the caller handles missing values).
///
/// # Errors
/// What is wrong with the value, e.g. "`12,34,5` is not an amount in won".
pub fn convert(conversion: Conversion, v: &J, options: Options<'_>) -> Result<J, String> {
    match conversion {
        Conversion::String => text(v)
            .map(J::String)
            .ok_or_else(|| format!("{} is not text", describe(v))),
        Conversion::Integer => integer(v),
        Conversion::Number => match v {
            J::Number(n) => Ok(J::Number(n.clone())),
            J::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(J::Number)
                .ok_or_else(|| format!("{} is not a number", describe(v))),
            _ => Err(format!("{} is not a number", describe(v))),
        },
        Conversion::Decimal => match options.implied_decimals {
            Some(n) => implied(v, n).and_then(|v| decimal(&v, options.scale)),
            None => decimal(v, options.scale),
        },
        Conversion::Boolean => boolean(v),
        Conversion::Krw => krw(v),
        Conversion::Date => date(v, options.format),
        Conversion::Timestamp => timestamp(v, options.format, options.offset),
    }
}

fn integer(v: &J) -> Result<J, String> {
    match v {
        J::Number(n) if n.is_i64() || n.is_u64() => Ok(J::Number(n.clone())),
        J::Number(n) => match n.as_f64() {
            #[allow(clippy::cast_possible_truncation)]
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(J::from(f as i64)),
            _ => Err(format!("{n} is not a whole number")),
        },
        J::String(s) => {
            let t = s.trim();
            t.parse::<i64>()
                .map(J::from)
                .map_err(|_| format!("{} is not a whole number", describe(v)))
        }
        _ => Err(format!("{} is not a whole number", describe(v))),
    }
}

/// A whole number with `n` implied decimals as decimal text: `125` with 2 is `1.25`.
fn implied(v: &J, n: u32) -> Result<J, String> {
    let bad = || {
        format!(
            "{} is not a whole number with {n} implied decimals",
            describe(v)
        )
    };
    let digits = match v {
        J::Number(x) if x.is_i64() || x.is_u64() => x.to_string(),
        J::String(s) => s.trim().to_owned(),
        _ => return Err(bad()),
    };
    let (sign, body) = match digits.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", digits.as_str()),
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = n as usize;
    let padded = format!("{body:0>width$}", width = n + 1);
    let (int, frac) = padded.split_at(padded.len() - n);
    Ok(J::String(format!("{sign}{int}.{frac}")))
}

fn boolean(v: &J) -> Result<J, String> {
    let b = match v {
        J::Bool(b) => Some(*b),
        J::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        J::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.map(J::Bool)
        .ok_or_else(|| format!("{} is not a flag (Y/N, 1/0, true/false)", describe(v)))
}

/// Korean won: `1,250,000`, `1,250,000원`, `₩1,250,000`, `KRW 1250000`, or a number.
fn krw(v: &J) -> Result<J, String> {
    let bad = || format!("{} is not an amount in won", describe(v));
    let s = match v {
        J::Number(_) => return integer(v).map_err(|_| bad()),
        J::String(s) => s.trim(),
        _ => return Err(bad()),
    };
    let s = s
        .trim_start_matches('₩')
        .trim_start_matches("KRW")
        .trim_end_matches('원')
        .trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    // Separators, when present, must group by three.
    if digits.contains(',') {
        let groups: Vec<&str> = digits.split(',').collect();
        let first_ok = (1..=3).contains(&groups[0].len());
        if !first_ok || groups[1..].iter().any(|g| g.len() != 3) {
            return Err(bad());
        }
    }
    let plain: String = digits.chars().filter(|c| *c != ',').collect();
    if !plain.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = plain.parse().map_err(|_| bad())?;
    Ok(J::from(if negative { -n } else { n }))
}

/// An exact decimal as text; with a scale, padded to it (never rounded: more digits is an error).
fn decimal(v: &J, scale: Option<u32>) -> Result<J, String> {
    let bad = || format!("{} is not a decimal number", describe(v));
    let raw = match v {
        J::Number(n) => n.to_string(),
        J::String(s) => s.trim().replace(',', ""),
        _ => return Err(bad()),
    };
    let (negative, body) = match raw.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, raw.strip_prefix('+').unwrap_or(&raw)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = match scale {
        Some(scale) => {
            let scale = scale as usize;
            let significant = frac.trim_end_matches('0');
            if significant.len() > scale {
                return Err(format!(
                    "{} has more than {scale} digits after the point",
                    describe(v)
                ));
            }
            format!("{significant:0<scale$}")
        }
        None => frac.trim_end_matches('0').to_owned(),
    };
    let sign = if negative && (int != "0" || frac.bytes().any(|b| b != b'0')) {
        "-"
    } else {
        ""
    };
    Ok(J::String(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }))
}

fn date(v: &J, format: Option<&str>) -> Result<J, String> {
    let s = match v {
        J::String(s) => s.trim().to_owned(),
        J::Number(n) => n.to_string(),
        _ => return Err(format!("{} is not a date", describe(v))),
    };
    let parsed = match format {
        Some(f) => NaiveDate::parse_from_str(&s, f).ok(),
        None => NaiveDate::parse_from_str(&s, "%Y%m%d")
            .or_else(|_| NaiveDate::parse_from_str(&s, "%Y-%m-%d"))
            .ok(),
    };
    parsed
        .map(|d| J::String(d.format("%Y-%m-%d").to_string()))
        .ok_or_else(|| match format {
            Some(f) => format!("{} is not a date in the format `{f}`", describe(v)),
            None => format!("{} is not a date (YYYYMMDD or YYYY-MM-DD)", describe(v)),
        })
}

fn timestamp(v: &J, format: Option<&str>, offset: Option<FixedOffset>) -> Result<J, String> {
    let s = match v {
        J::String(s) => s.trim(),
        _ => return Err(format!("{} is not a date and time", describe(v))),
    };
    let local = offset.or_else(|| FixedOffset::east_opt(9 * 3600));
    let utc = |t: DateTime<FixedOffset>| {
        J::String(t.to_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true))
    };
    let naive = |t: NaiveDateTime| local.and_then(|o| o.from_local_datetime(&t).single());
    let parsed = match format {
        Some(f) => DateTime::parse_from_str(s, f)
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(s, f).ok().and_then(naive)),
        None => DateTime::parse_from_rfc3339(s).ok().or_else(|| {
            [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y%m%d%H%M%S",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .and_then(naive)
        }),
    };
    parsed.map(utc).ok_or_else(|| match format {
        Some(f) => format!("{} is not a date and time in the format `{f}`", describe(v)),
        None => format!(
            "{} is not a date and time (RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYYMMDDHHMMSS`)",
            describe(v)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(conversion: Conversion, v: J) -> Result<J, String> {
        convert(conversion, &v, Options::default())
    }

    #[test]
    fn won_amounts_with_separators_and_units() {
        for (input, out) in [
            (json!("1,250,000"), 1_250_000),
            (json!("1,250,000원"), 1_250_000),
            (json!("₩ 95,500"), 95_500),
            (json!("KRW 1000"), 1000),
            (json!(" 120000 "), 120_000),
            (json!("-3,000"), -3000),
            (json!(42), 42),
        ] {
            assert_eq!(c(Conversion::Krw, input.clone()), Ok(json!(out)), "{input}");
        }
        for bad in [
            json!("12,34,5"),
            json!("1.5"),
            json!("lots"),
            json!(""),
            json!("1,0000"),
        ] {
            let e = c(Conversion::Krw, bad.clone()).expect_err("refused");
            assert!(e.contains("not an amount in won"), "{bad}: {e}");
        }
    }

    #[test]
    fn dates_in_legacy_and_iso_forms() {
        assert_eq!(
            c(Conversion::Date, json!("20261102")),
            Ok(json!("2026-11-02"))
        );
        assert_eq!(
            c(Conversion::Date, json!("2026-11-02")),
            Ok(json!("2026-11-02"))
        );
        assert_eq!(
            c(Conversion::Date, json!(20261102)),
            Ok(json!("2026-11-02"))
        );
        let with = |f| {
            convert(
                Conversion::Date,
                &json!("02/11/2026"),
                Options {
                    format: Some(f),
                    ..Options::default()
                },
            )
        };
        assert_eq!(with("%d/%m/%Y"), Ok(json!("2026-11-02")));
        assert!(c(Conversion::Date, json!("20261332")).is_err());
        assert!(c(Conversion::Date, json!("00000000")).is_err());
    }

    #[test]
    fn local_times_become_utc() {
        assert_eq!(
            c(Conversion::Timestamp, json!("2026-11-02 09:30:00")),
            Ok(json!("2026-11-02T00:30:00Z")),
            "legacy local times are Seoul time by default"
        );
        assert_eq!(
            c(
                Conversion::Timestamp,
                json!("2026-11-02T09:30:00.250+09:00")
            ),
            Ok(json!("2026-11-02T00:30:00.250Z"))
        );
        let utc = Options {
            offset: parse_offset("UTC"),
            ..Options::default()
        };
        assert_eq!(
            convert(Conversion::Timestamp, &json!("20261102093000"), utc),
            Ok(json!("2026-11-02T09:30:00Z"))
        );
        assert!(c(Conversion::Timestamp, json!("yesterday")).is_err());
        assert_eq!(
            parse_offset("-03:30").map(|o| o.local_minus_utc()),
            Some(-12_600)
        );
        assert_eq!(parse_offset("Mars/Olympus"), None);
    }

    #[test]
    fn decimals_stay_exact() {
        let d = |v: J, scale| {
            convert(
                Conversion::Decimal,
                &v,
                Options {
                    scale,
                    ..Options::default()
                },
            )
        };
        assert_eq!(d(json!("12.5"), Some(2)), Ok(json!("12.50")));
        assert_eq!(d(json!("0012.500"), None), Ok(json!("12.5")));
        assert_eq!(d(json!(3), Some(1)), Ok(json!("3.0")));
        assert_eq!(d(json!("1,234.10"), Some(2)), Ok(json!("1234.10")));
        assert_eq!(d(json!("-0.00"), Some(2)), Ok(json!("0.00")));
        assert!(
            d(json!("1.234"), Some(2))
                .expect_err("no rounding")
                .contains("more than 2 digits")
        );
        assert!(d(json!("1.2.3"), None).is_err());
        let implied = |v: J| {
            convert(
                Conversion::Decimal,
                &v,
                Options {
                    scale: Some(2),
                    implied_decimals: Some(2),
                    ..Options::default()
                },
            )
        };
        assert_eq!(implied(json!(125)), Ok(json!("1.25")));
        assert_eq!(implied(json!("0000125")), Ok(json!("1.25")));
        assert_eq!(implied(json!(5)), Ok(json!("0.05")));
        assert!(implied(json!("1.5")).is_err());
    }

    #[test]
    fn flags_numbers_and_text() {
        assert_eq!(c(Conversion::Boolean, json!("Y")), Ok(json!(true)));
        assert_eq!(c(Conversion::Boolean, json!(0)), Ok(json!(false)));
        assert!(c(Conversion::Boolean, json!("maybe")).is_err());
        assert_eq!(c(Conversion::Integer, json!(" 17 ")), Ok(json!(17)));
        assert!(c(Conversion::Integer, json!("17.5")).is_err());
        assert_eq!(c(Conversion::Number, json!("17.5")), Ok(json!(17.5)));
        assert_eq!(c(Conversion::String, json!(17)), Ok(json!("17")));
    }
}
