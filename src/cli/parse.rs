//! Value parsers for the flags whose range or form `--help` states, so that every number it
//! names is enforced at parse time (a usage error, exit status 2).

use std::net::SocketAddr;
use std::time::Duration;

/// Parses `250ms`, `15s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 15s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// The lab's `--delay`: a duration as [`parse_duration`] reads it, except that a bare number
/// counts milliseconds (the unit the option has always taken, and the one delays are spoken in).
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a delay such as 25ms"))?;
        return Ok(Duration::from_millis(ms));
    }
    parse_duration(text)
}

/// A duration that must be longer than zero (a zero timeout, interval or expiry would end or
/// repeat at once).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("`{text}` is zero: give a duration longer than 0"));
    }
    Ok(duration)
}

/// The punch `--punch-timeout` (and `--call-timeout`): longer than zero and at most
/// [`MAX_TIMEOUT`](crate::core::punch::plan::MAX_TIMEOUT), as its help says.
pub fn parse_punch_timeout(text: &str) -> Result<Duration, String> {
    let max = crate::core::punch::plan::MAX_TIMEOUT;
    let duration = parse_positive_duration(text)?;
    if duration > max {
        return Err(format!(
            "`{text}` is longer than {}s, the longest punch a NAT's unanswered UDP flow outlives",
            max.as_secs()
        ));
    }
    Ok(duration)
}

/// An address another host listens on: port 0 names no port there.
pub fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not an IP:PORT address: {e}"))?;
    if addr.port() == 0 {
        return Err(format!("`{text}`: port 0 names no port; give 1 to 65535"));
    }
    Ok(addr)
}

/// An ID (`--id`, the callee): the name the wire carries, checked before anything is sent.
pub fn parse_id(text: &str) -> Result<String, String> {
    crate::wire::natlens::validate_name(text)
        .map(str::to_owned)
        .map_err(|_| {
            format!(
                "not a valid ID: use 1 to {} bytes of printable UTF-8 without spaces",
                crate::wire::natlens::MAX_NAME_LEN
            )
        })
}

/// A preset delta: non-zero and no larger than the biggest step called sequential.
pub fn parse_delta(text: &str) -> Result<i32, String> {
    let max = crate::core::fingerprint::allocation::MAX_STEP;
    match text.trim().parse::<i32>() {
        Ok(0) => Err("a delta of 0 predicts nothing: use a non-zero step such as 1".into()),
        Ok(delta) if delta.abs() <= max => Ok(delta),
        Ok(_) => Err(format!("a delta must lie within -{max}..={max}")),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn lab_delays_take_units_and_bare_milliseconds() {
        assert_eq!(parse_delay("25"), Ok(Duration::from_millis(25)));
        assert_eq!(parse_delay("25ms"), Ok(Duration::from_millis(25)));
        assert_eq!(parse_delay("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("25 ms later").is_err());
        assert!(parse_delay("").is_err());
    }

    #[test]
    fn ranges_the_help_states_are_enforced() {
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_punch_timeout("0s").is_err());
        assert_eq!(parse_punch_timeout("25s"), Ok(Duration::from_secs(25)));
        assert!(parse_punch_timeout("25.001s").is_err());
        assert!(parse_endpoint("127.0.0.1:0").is_err());
        assert!(parse_endpoint("[::1]:3478").is_ok());
        assert!(parse_id("two words").is_err());
        assert!(parse_id("").is_err());
        assert!(parse_id(&"x".repeat(65)).is_err());
        assert_eq!(parse_id("alice"), Ok("alice".to_owned()));
    }
}
