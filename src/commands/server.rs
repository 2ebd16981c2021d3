//! `natlens server`: binds, then serves until SIGINT/SIGTERM. With `--json` its log is NDJSON
//! on stderr and stdout carries one final object when it ends (`lib::run_to_exit` prints the
//! failure object of a bind error).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ServerArgs;
use crate::core::credentials::Credentials;
use crate::io::server::redis_registry::RegistryTarget;
use crate::io::server::{Reporter, ServeOptions, Server};
use crate::io::signal;
use crate::render::log::ServerLog;
use crate::report::outcome::{Done, SERVER_SCHEMA_VERSION};
use crate::wire::natlens::validate_name;

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let link_address = link_address(&args)?;
    let name = match args.name {
        Some(name) => validate_name(&name).map(str::to_owned).map_err(|_| {
            crate::exit::failed(
                crate::exit::Kind::Usage,
                format!("--name {name:?}: use 1 to 64 printable characters without spaces"),
            )
        })?,
        None => random_name(),
    };
    if !args.json {
        // The NDJSON log has no event for it; a plain line there would break the stream.
        for line in args.links.iter().filter_map(super::resolved_line) {
            eprintln!("natlens: --link {line}");
        }
    }
    let mut warnings = Vec::new();
    let options = ServeOptions {
        listen: args.listen,
        alternate: args.alternate,
        advertise: args.advertise,
        links: args.links.iter().map(|link| link.addr).collect(),
        name,
        udp_expiry: args.udp_expiry,
        max_sessions: args
            .max_sessions
            .unwrap_or_else(crate::io::server::default_max_sessions),
        max_sessions_per_ip: args.max_sessions_per_ip,
        max_pending_calls: args.max_pending_calls,
        credentials: match &args.credentials {
            Some(path) => Some(load_credentials(path, &mut warnings)?),
            None => None,
        },
        answer_rate: (args.answer_rate > 0).then_some(args.answer_rate),
        max_connections: args.max_connections,
        max_message: args.max_message.clamp(548, 65_535),
        max_tcp_backlog: args.max_tcp_backlog,
        tcp_idle: args.tcp_idle,
        stats_interval: (!args.stats_interval.is_zero()).then_some(args.stats_interval),
        registry: (!args.registry.is_empty()).then(|| RegistryTarget {
            urls: args.registry.clone(),
            cluster: args.registry_cluster,
        }),
        link_address,
        registry_refresh: args.registry_refresh,
    };
    let mut log = ServerLog::new(args.json, crate::render::verbosity::quiet());
    for warning in &warnings {
        log.warn(warning);
    }
    let (stop, stats_now) = (signal::stop_flag()?, signal::stats_flag()?);
    let mut server = Server::bind(options, &mut log).context("starting the server")?;
    // Every socket is bound (a port below 1024 may have needed root or
    // CAP_NET_BIND_SERVICE); nothing after this needs a privilege, so a server started as root
    // faces hostile traffic without any. The loop is single-threaded: this covers it all.
    if let Err(error) = crate::io::caps::drop_all() {
        log.warn(&format!("could not drop capabilities: {error}"));
    }
    server.run(stop, stats_now, &mut log)?;
    if args.json {
        // The one final object on stdout (the log is on stderr); a failure prints its own.
        let done = Done::new(SERVER_SCHEMA_VERSION, None);
        writeln!(std::io::stdout().lock(), "{}", done.json())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--link-address`, or the first `--listen` address when that is one other servers can dial;
/// with `--registry` there must be one (the registry's entries name it).
fn link_address(args: &ServerArgs) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let fallback = args
        .listen
        .first()
        .filter(|addr| !addr.ip().is_unspecified())
        .copied();
    let address = args.link_address.or(fallback);
    if !args.registry.is_empty() && address.is_none() {
        return Err(crate::exit::failed(
            crate::exit::Kind::Usage,
            "--registry needs an address other servers can dial: give --link-address IP:PORT \
             (the first --listen address is a wildcard)",
        ));
    }
    Ok(address)
}

/// Reads the credentials file; a file others can read earns a warning (keys are secrets, but
/// refusing would break setups that protect the file some other way, e.g. a private mount).
fn load_credentials(path: &Path, warnings: &mut Vec<String>) -> anyhow::Result<Credentials> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the credentials file {}", path.display()))?;
    let credentials = Credentials::parse(&text)
        .with_context(|| format!("malformed credentials file {}", path.display()))?;
    if credentials.is_empty() {
        anyhow::bail!(
            "the credentials file {} lists no IDs: no one could log in",
            path.display()
        );
    }
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warnings.push(format!(
                "the credentials file {} is readable by other users (mode {:o}); \
                 run chmod 600 on it",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
    }
    Ok(credentials)
}

/// A federation name unlikely to collide: `natlens-` and 8 hex digits from the clock and PID.
fn random_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("natlens-{:08x}", nanos ^ std::process::id().rotate_left(16))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::core::events::Event;
    use crate::core::Transport;

    /// The OUTPUT section of `natlens server --help` names every event and every key of it.
    #[test]
    fn every_server_event_is_documented() {
        let cli = crate::cli::Cli::command();
        let help = cli
            .find_subcommand("server")
            .and_then(|c| c.get_after_long_help())
            .expect("an OUTPUT section")
            .to_string();
        let from = "192.0.2.7:5000".parse().unwrap();
        let (id, text) = (String::from("alice"), String::from("x"));
        let events = [
            Event::Login {
                id: id.clone(),
                transport: Transport::Udp,
                observed: from,
            },
            Event::LoginRefused {
                id: id.clone(),
                transport: Transport::Udp,
                from,
                code: 401,
                reason: "unauthorized",
            },
            Event::Logout {
                id: id.clone(),
                transport: Transport::Tcp,
                reason: "closed",
            },
            Event::Expire {
                id,
                observed: from,
                silent_ms: 45_000,
            },
            Event::Call {
                call_id: text.clone(),
                caller: text.clone(),
                callee: text.clone(),
                from: text.clone(),
            },
            Event::Relay {
                call_id: text.clone(),
                caller: text.clone(),
                callee: text.clone(),
                outcome: "answered",
                code: None,
            },
            Event::Drop {
                reason: "malformed",
                transport: Transport::Udp,
                from: Some(from),
            },
            Event::LinkUp {
                name: text.clone(),
                conn: 1,
            },
            Event::LinkDown {
                name: text,
                conn: 1,
            },
        ];
        for event in events {
            let value = serde_json::to_value(&event).unwrap();
            assert!(value.get("observed").is_none(), "{value}");
            for (key, field) in value.as_object().unwrap() {
                let name = if key == "event" {
                    field.as_str().unwrap()
                } else {
                    key
                };
                assert!(help.contains(name), "{name} undocumented");
            }
        }
    }
}
