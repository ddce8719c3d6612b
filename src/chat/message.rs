//! What clients send, and time formatting for what they receive.

/// A message from a chat client. Unknown `type`s are ignored (the contract
/// lets either side add types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Chat { text: String },
}

/// Longest client message accepted, in bytes: 500 characters of up to 4
/// bytes each, JSON escaping and the envelope.
pub const MAX_CLIENT_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("message is larger than {MAX_CLIENT_BYTES} bytes")]
    TooLarge,
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message needs a string \"type\"")]
    NoType,
    #[error("chat message needs a string \"text\"")]
    NoText,
}

impl ClientMessage {
    /// `Ok(None)` for a well-formed message of a type this server ignores.
    pub fn parse(raw: &str) -> Result<Option<ClientMessage>, ParseError> {
        if raw.len() > MAX_CLIENT_BYTES {
            return Err(ParseError::TooLarge);
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let ty = v
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or(ParseError::NoType)?;
        match ty {
            "chat" => {
                let text = v
                    .get("text")
                    .and_then(|t| t.as_str())
                    .ok_or(ParseError::NoText)?;
                Ok(Some(ClientMessage::Chat {
                    text: text.to_string(),
                }))
            }
            _ => Ok(None),
        }
    }
}

pub fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T03:40:50.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian.
/// Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms".
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_795_318_850_007), "2026-11-22T03:40:50.007Z");
    }

    #[test]
    fn parses_client_messages() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"chat","text":"<b>hi</b>"}"#).unwrap(),
            Some(ClientMessage::Chat {
                text: "<b>hi</b>".into()
            })
        );
        assert_eq!(ClientMessage::parse(r#"{"type":"future"}"#).unwrap(), None);
        assert!(ClientMessage::parse("nope").is_err());
        assert!(ClientMessage::parse(r#"{"text":"x"}"#).is_err());
        assert!(ClientMessage::parse(r#"{"type":"chat","text":5}"#).is_err());
        assert!(ClientMessage::parse(&"x".repeat(MAX_CLIENT_BYTES + 1)).is_err());
    }
}

/// Parses RFC 3339 (`2026-11-22T03:40:50Z`, fractional seconds and
/// `+HH:MM` offsets allowed) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.as_bytes()[3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if rest.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    if civil_from_days(days) != (y, mo as u32, d as u32) {
        return None; // 31 February and the like
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// (year, month, day) -> days since 1970-01-01; inverse of `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC, whole seconds.
pub fn rfc3339(unix_secs: i64) -> String {
    let ms = rfc3339_ms(unix_secs * 1000);
    format!("{}Z", &ms[..19])
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        for t in [0i64, 951_782_400, 1_795_318_850, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-22T04:40:50+01:00"),
            Some(1_795_318_850)
        );
        assert_eq!(parse_rfc3339("2026-11-22T03:40:50.5Z"), Some(1_795_318_850));
        for bad in [
            "",
            "2026-02-31T00:00:00Z",
            "2026-11-22",
            "2026-11-22T03:40:50",
            "x026-11-22T03:40:50Z",
            "2026-11-22T03:40:50Z'; DROP TABLE users;--",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
