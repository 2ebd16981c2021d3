//! The server's log on stderr: human-readable lines, or NDJSON with `--json`.
//!
//! Every line carries an RFC 3339 UTC timestamp. Drop events are rate-limited (a flood of
//! garbage must not turn into a flood of log lines that slows the server); the counters in the
//! stats line stay exact.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::core::binding::FullMode;
use crate::core::events::Event;
use crate::core::Transport;
use crate::io::server::{Reporter, StatsSnapshot};

/// Drop lines printed per second at most; the rest are summarised.
const DROP_LINES_PER_SECOND: u32 = 20;

/// Writes server events to stderr.
pub struct ServerLog {
    json: bool,
    quiet: bool,
    drop_window: Instant,
    drops_in_window: u32,
    suppressed: u64,
}

impl ServerLog {
    pub fn new(json: bool, quiet: bool) -> Self {
        ServerLog {
            json,
            quiet,
            drop_window: Instant::now(),
            drops_in_window: 0,
            suppressed: 0,
        }
    }

    fn emit(&self, kind: &str, mut fields: Value, human: String) {
        let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let line = if self.json {
            if let Value::Object(map) = &mut fields {
                map.insert("ts".into(), Value::String(timestamp));
                map.insert("event".into(), Value::String(kind.into()));
            }
            fields.to_string()
        } else {
            format!("{timestamp} {kind:<8} {human}")
        };
        // A closed stderr must not take the server down.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// False when this drop line is over the rate limit.
    fn admit_drop(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.drop_window) >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                let suppressed = self.suppressed;
                self.emit(
                    "drop",
                    json!({"suppressed": suppressed}),
                    format!("{suppressed} more drops not shown (see stats)"),
                );
            }
            self.drop_window = now;
            self.drops_in_window = 0;
            self.suppressed = 0;
        }
        self.drops_in_window += 1;
        if self.drops_in_window > DROP_LINES_PER_SECOND {
            self.suppressed += 1;
            return false;
        }
        true
    }
}

impl Reporter for ServerLog {
    fn listening(&mut self, transport: Transport, addr: SocketAddr, full_mode: Option<&FullMode>) {
        let mode = match full_mode {
            Some(full) => format!(
                " (RFC 5780 full mode: {} / {})",
                full.primary, full.alternate
            ),
            None => String::new(),
        };
        let fields =
            json!({"transport": transport, "address": addr, "full_mode": full_mode.is_some()});
        self.emit(
            "listening",
            fields,
            format!("{} {addr}{mode}", transport.as_str()),
        );
    }

    fn event(&mut self, event: &Event) {
        let important = matches!(
            event,
            Event::LinkUp { .. }
                | Event::LinkDown { .. }
                | Event::RegistryUp { .. }
                | Event::RegistryDown { .. }
        );
        if self.quiet && !important {
            return;
        }
        if matches!(event, Event::Drop { .. }) && !self.admit_drop() {
            return;
        }
        let mut fields = serde_json::to_value(event).unwrap_or(Value::Null);
        let kind = match &mut fields {
            Value::Object(map) => match map.remove("event") {
                Some(Value::String(kind)) => kind,
                _ => "event".to_owned(),
            },
            _ => "event".to_owned(),
        };
        let human = human_fields(&fields);
        self.emit(&kind, fields, human);
    }

    fn stats(&mut self, stats: &StatsSnapshot) {
        let fields = serde_json::to_value(stats).unwrap_or(Value::Null);
        let drops: Vec<String> = stats
            .counters
            .drops
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect();
        // `peers=[...]` names the linked servers, as the JSON stats line's `peers` key does.
        let human = format!(
            "sessions udp={} tcp={} connections={} peers=[{}] requests/s={:.0} bindings={} logins={} calls={} relayed={} errors={} drops={} [{}]",
            stats.sessions_udp,
            stats.sessions_tcp,
            stats.connections,
            stats.links.join(","),
            stats.requests_per_sec,
            stats.counters.bindings,
            stats.counters.logins,
            stats.counters.calls,
            stats.counters.relayed,
            stats.counters.errors,
            stats.counters.total_drops(),
            drops.join(" "),
        );
        let human = match stats.registry {
            Some(registry) => format!("{human} registry={registry}"),
            None => human,
        };
        self.emit("stats", fields, human);
    }

    fn warn(&mut self, message: &str) {
        self.emit("warning", json!({"message": message}), message.to_owned());
    }
}

/// `key=value` pairs of an event, in the order serde gives them.
fn human_fields(fields: &Value) -> String {
    let Value::Object(map) = fields else {
        return String::new();
    };
    map.iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
