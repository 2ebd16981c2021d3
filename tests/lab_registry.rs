//! Three `natlens server --registry` sharing one Redis inside the NAT lab, clients behind the
//! lab's NATs: the same checks as tests/registry_redis.rs on loopback, over real routed
//! addresses and through real NATs.
//!
//! Redis runs on the public host (203.0.113.20:6379, a temporary directory, started and killed
//! by the test), s1 and s2 on the server host's two addresses (203.0.113.10 and .11), s3 on the
//! public host beside Redis; each server's registry entries name its own address, and calls
//! cross between the hosts over links dialled on demand.
//!
//! - Open IDs: UDP and TCP logins on different servers reached through every other server, and
//!   one call across servers that punches through both NATs (sequential A, cone B).
//! - Keyed IDs (`--credentials` on every server): a server killed, its clients (UDP and TCP
//!   logins) move to their next `--server` within two keepalives and are callable through a
//!   third server; the entry of a client that had nowhere to go names the dead server, and the
//!   call fails within a second and deletes it; so does an entry naming an address where no
//!   host answers at all.
//!
//! Root with network namespaces and redis-server only; otherwise SKIPPED (a failure under CI).
//! The two tests build a lab each and run in parallel.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lab_cli::{natlens, Proc};
use common::programs::require_tools;
use natlens::lab::{Host, Lab, LabSpec, NatMode, Side};
use serde_json::Value;

const KEEPALIVE: Duration = Duration::from_secs(1);
const REDIS_PORT: u16 = 6379;
/// Every server's --registry-refresh: entries live three times this, longer than any step of
/// these tests, so an entry that vanishes was deleted, not lapsed.
const REFRESH: &str = "5s";

/// Where each server listens: s1 and s2 on the server host's two addresses (port 3478), s3 on
/// the public host.
fn server_addrs(lab: &Lab) -> [(Host, SocketAddr); 3] {
    let primary = natlens::lab::server::primary();
    let public = lab.addr(Host::Public).expect("a public host");
    [
        (Host::Server, primary),
        (
            Host::Server,
            SocketAddr::new(natlens::lab::server::alternate().ip(), primary.port()),
        ),
        (Host::Public, SocketAddr::new(public.into(), primary.port())),
    ]
}

/// A lab with Redis and three registry servers in it; everything is killed (and the scratch
/// directory removed) on drop, the lab last.
struct RegistryLab {
    /// s1, s2, s3; `None` once killed.
    servers: Vec<Option<Proc>>,
    addrs: Vec<SocketAddr>,
    _redis: Proc,
    redis_url: String,
    dir: PathBuf,
    lab: Lab,
}

impl RegistryLab {
    /// Builds the lab and starts Redis and the servers, with `--credentials` when
    /// `credentials` (the file's text) is given; `None` (SKIPPED) without a lab or
    /// redis-server.
    fn up(tag: &str, spec: LabSpec, credentials: Option<&str>) -> Option<RegistryLab> {
        if !common::lab_available() {
            return None;
        }
        require_tools(tag, &["redis-server"], "apt-get install redis-server")?;
        let dir = std::env::temp_dir().join(format!("natlens-labreg-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let credentials = credentials.map(|text| write_private(&dir, "credentials", text));
        let lab = Lab::up(LabSpec {
            public_host: true,
            ..spec
        })
        .expect("building the lab");
        let public = lab.addr(Host::Public).unwrap();
        let mut redis = Command::new("redis-server");
        redis
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args([
                "--bind",
                &public.to_string(),
                "--port",
                &REDIS_PORT.to_string(),
            ])
            .arg("--dir")
            .arg(&dir);
        // Nothing to wait for here: the servers retry every half second and say when they
        // reach it.
        let redis = Proc::spawn(&lab, Host::Public, redis);
        let redis_url = format!("redis://{public}:{REDIS_PORT}");
        let addrs: Vec<SocketAddr> = server_addrs(&lab).iter().map(|(_, a)| *a).collect();
        let mut servers = Vec::new();
        for (n, (host, addr)) in server_addrs(&lab).into_iter().enumerate() {
            let mut command = natlens(&["server", "--name", &format!("s{}", n + 1)]);
            command.args(["--listen", &addr.to_string(), "--registry", &redis_url]);
            command.args(["--registry-refresh", REFRESH]);
            if let Some(file) = &credentials {
                command.arg("--credentials").arg(file);
            }
            servers.push(Some(Proc::spawn(&lab, host, command)));
        }
        for (n, server) in servers.iter().enumerate() {
            let server = server.as_ref().unwrap();
            assert!(
                server.wait_for("registry_up", Duration::from_secs(10)),
                "s{} never reached Redis: {:?}",
                n + 1,
                server.stderr_so_far()
            );
        }
        Some(RegistryLab {
            servers,
            addrs,
            _redis: redis,
            redis_url,
            dir,
            lab,
        })
    }

    /// Runs `command` on a Redis connection made from inside the lab.
    fn redis<T: redis::FromRedisValue + Send + 'static>(&self, command: redis::Cmd) -> T {
        let url = self.redis_url.clone();
        self.lab
            .in_netns(Host::Public, move || {
                let client = redis::Client::open(url).unwrap();
                let mut conn = client
                    .get_connection_with_timeout(Duration::from_secs(1))
                    .expect("redis answers");
                command.query(&mut conn).expect("a redis command")
            })
            .unwrap()
    }

    /// The home server `id`'s entry names.
    fn home_of(&self, id: &str) -> Option<String> {
        self.redis(redis::cmd("GET").arg(format!("natlens:home:{id}")).clone())
    }

    fn set(&self, id: &str, home: &str) {
        let key = format!("natlens:home:{id}");
        self.redis::<()>(redis::cmd("SET").arg(key).arg(home).clone());
    }

    /// Waits up to `timeout` for `id`'s entry to be `home`; what it is then.
    fn wait_home(&self, id: &str, home: Option<SocketAddr>, timeout: Duration) -> Option<String> {
        let want = home.map(|home| home.to_string());
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.home_of(id);
            if now == want || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `natlens listen` on `host` as `id` through `servers` (indices, in order), waiting for
    /// calls; `key` is the key file of a keyed ID.
    fn listen(
        &self,
        host: Host,
        id: &str,
        servers: &[usize],
        login: &str,
        key: Option<&Path>,
    ) -> Proc {
        let mut command = natlens(&["listen", "--id", id, "--login-transport", login]);
        for &n in servers {
            command.args(["--server", &self.addrs[n].to_string()]);
        }
        let keepalive = format!("{}ms", KEEPALIVE.as_millis());
        command.args(["--keepalive", &keepalive, "--json", "--no-data"]);
        command.args(["--family", "4", "--port-mapping", "off"]);
        if let Some(key) = key {
            command.arg("--key-file").arg(key);
        }
        let listen = Proc::spawn(&self.lab, host, command);
        assert!(
            listen.wait_for("\"event\":\"waiting\"", Duration::from_secs(10)),
            "{id} never waited: {:?}",
            listen.stderr_so_far()
        );
        listen
    }

    /// `natlens call CALLEE --no-punch --json` from `host` as `me` through server `n`; its
    /// output and how long it took.
    fn call_no_punch(
        &self,
        host: Host,
        n: usize,
        me: &str,
        callee: &str,
        key: Option<&Path>,
    ) -> (Output, Duration) {
        let mut argv: Vec<String> = vec![env!("CARGO_BIN_EXE_natlens").to_owned(), "call".into()];
        argv.extend([callee, "--server", &self.addrs[n].to_string(), "--id", me].map(String::from));
        argv.extend(["--no-punch", "--json", "--call-timeout", "5s"].map(String::from));
        if let Some(key) = key {
            argv.extend(["--key-file".to_owned(), key.to_str().unwrap().to_owned()]);
        }
        let started = Instant::now();
        let output = self.lab.exec(host, &argv).expect("running natlens call");
        (output, started.elapsed())
    }

    /// A `--no-punch` call that the callee must answer with its facts.
    fn assert_answered(&self, host: Host, n: usize, me: &str, callee: &str, key: Option<&Path>) {
        let (output, _) = self.call_no_punch(host, n, me, callee, key);
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        assert!(
            output.status.success() && report["callee"] == callee,
            "{me} on {host} -> {callee} through s{}: {} {}",
            n + 1,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A call through server `n` that must fail within a second with `message`.
    fn assert_fails_fast(&self, n: usize, me: &str, callee: &str, key: &Path, message: &str) {
        let (output, elapsed) = self.call_no_punch(Host::Noise(Side::B), n, me, callee, Some(key));
        let failure: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let said = failure["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !output.status.success() && said.contains(message),
            "{me} -> {callee} through s{}: {failure} {}",
            n + 1,
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "  {me} -> {callee}: {message} after {} ms",
            elapsed.as_millis()
        );
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }

    /// SIGKILL server `n`, as a crash.
    fn kill(&mut self, n: usize) {
        if let Some(mut server) = self.servers[n].take() {
            server.kill();
            server.finish(Instant::now());
        }
    }

    fn server(&self, n: usize) -> &Proc {
        self.servers[n].as_ref().expect("a running server")
    }
}

impl Drop for RegistryLab {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `dir/name` holding `text`, readable by its owner only.
fn write_private(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn open_ids_on_three_servers_in_the_lab_call_across_and_punch_through_the_nats() {
    let spec = LabSpec {
        nat_a: NatMode::Sequential { delta: 1 },
        nat_b: NatMode::Cone,
        ..LabSpec::default()
    };
    let started = Instant::now();
    let Some(lab) = RegistryLab::up("open", spec, None) else {
        return;
    };
    // alice behind A on s1 over UDP, dave behind B on s3 (the public host) over TCP.
    let alice = lab.listen(Host::Lan(Side::A), "alice", &[0], "udp", None);
    let dave = lab.listen(Host::Noise(Side::B), "dave", &[2], "tcp", None);
    for (id, n) in [("alice", 0), ("dave", 2)] {
        let home = Some(lab.addrs[n]);
        assert_eq!(
            lab.wait_home(id, home, Duration::from_secs(2)),
            home.map(|home| home.to_string())
        );
    }
    // s1 and s2 both reach dave on s3, for callers behind either NAT.
    lab.assert_answered(Host::Lan(Side::B), 0, "erin", "dave", None);
    lab.assert_answered(Host::Noise(Side::A), 1, "frank", "dave", None);
    let from = |name: &str| {
        let lines = lab.server(2).stderr_so_far();
        lines
            .iter()
            .any(|l| l.contains("callee=dave") && l.contains(name))
    };
    assert!(
        from("from=s1") && from("from=s2"),
        "{:?}",
        lab.server(2).stderr_so_far()
    );

    // bob behind B calls alice through s2: s2 finds her on s1, and the two ends punch
    // through router B (cone) and router A (sequential).
    let mut call = natlens(&["call", "alice", "--server", &lab.addrs[1].to_string()]);
    call.args(["--id", "bob", "--json", "--no-data", "--family", "4"]);
    call.args(["--port-mapping", "off"]);
    let call = Proc::spawn(&lab.lab, Host::Lan(Side::B), call);
    let limit = Instant::now() + Duration::from_secs(15);
    let (call, alice) = (call.finish(limit), alice.finish(limit));
    for (name, end) in [("bob", &call), ("alice", &alice)] {
        let report: Value = serde_json::from_slice(&end.stdout).unwrap_or(Value::Null);
        assert!(
            end.status.success() && report["result"] == "connected",
            "{name}'s end: {report}\n{}",
            end.stderr.join("\n")
        );
    }
    drop(dave);
    eprintln!("open IDs in the lab: {:.1?}", started.elapsed());
}

#[test]
fn in_the_lab_a_killed_servers_keyed_clients_move_and_its_stale_entries_fail_fast() {
    let ids = ["carol", "grace", "erin", "frank", "heidi"];
    let credentials: String = ids.iter().map(|id| format!("{id} {id}-key\n")).collect();
    let spec = LabSpec {
        nat_a: NatMode::Cone,
        nat_b: NatMode::Sequential { delta: 1 },
        ..LabSpec::default()
    };
    let started = Instant::now();
    let Some(mut lab) = RegistryLab::up("keyed", spec, Some(&credentials)) else {
        return;
    };
    let key = |id: &str| write_private(&lab.dir, &format!("{id}.key"), &format!("{id}-key\n"));
    let (carol_key, grace_key, erin_key) = (key("carol"), key("grace"), key("erin"));
    let (frank_key, heidi_key) = (key("frank"), key("heidi"));
    // carol (UDP) and grace (TCP) log in to s1 with a second server to go to; erin has none.
    let carol = lab.listen(
        Host::Lan(Side::A),
        "carol",
        &[0, 1],
        "udp",
        Some(&carol_key),
    );
    let grace = lab.listen(
        Host::Lan(Side::B),
        "grace",
        &[0, 2],
        "tcp",
        Some(&grace_key),
    );
    let _erin = lab.listen(Host::Noise(Side::A), "erin", &[0], "udp", Some(&erin_key));
    for id in ["carol", "grace", "erin"] {
        let s1 = Some(lab.addrs[0]);
        assert_eq!(
            lab.wait_home(id, s1, Duration::from_secs(2)),
            s1.map(|a| a.to_string())
        );
    }
    // (A listener punches after answering a call, so only erin, who goes nowhere, is called
    // before the fault.)
    lab.assert_answered(Host::Noise(Side::B), 1, "frank", "erin", Some(&frank_key));

    // s1 dies: carol moves to s2 and grace to s3 within two keepalives, their entries follow,
    // and a third server reaches each.
    let killed = Instant::now();
    lab.kill(0);
    for (client, id, to) in [(&carol, "carol", 1), (&grace, "grace", 2)] {
        let moved = client.wait_for("\"event\":\"relogin\"", KEEPALIVE * 4);
        let took = killed.elapsed();
        eprintln!(
            "  {id} logged in on s{} {} ms after s1 died",
            to + 1,
            took.as_millis()
        );
        assert!(
            moved && took <= KEEPALIVE * 2,
            "{id}: {took:?} {:?}",
            client.stderr_so_far()
        );
        let home = Some(lab.addrs[to]);
        assert_eq!(
            lab.wait_home(id, home, Duration::from_secs(1)),
            home.map(|a| a.to_string())
        );
    }
    // Both answered, through the third server, within two keepalives of the crash.
    lab.assert_answered(Host::Noise(Side::B), 2, "frank", "carol", Some(&frank_key));
    lab.assert_answered(Host::Noise(Side::B), 1, "heidi", "grace", Some(&heidi_key));
    let callable = killed.elapsed();
    eprintln!(
        "  both called back {} ms after s1 died",
        callable.as_millis()
    );
    assert!(callable <= KEEPALIVE * 2, "{callable:?}");

    // erin's entry still names the dead s1: the call fails within a second and deletes it,
    // and the next call is "not found" without dialling again.
    assert_eq!(lab.home_of("erin"), Some(lab.addrs[0].to_string()));
    lab.assert_fails_fast(2, "frank", "erin", &frank_key, "Home server unreachable");
    assert_eq!(lab.wait_home("erin", None, Duration::from_secs(1)), None);
    let (output, elapsed) =
        lab.call_no_punch(Host::Noise(Side::B), 2, "frank", "erin", Some(&frank_key));
    assert_eq!(output.status.code(), Some(natlens::exit::NO_CALLEE.into()));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    // An entry naming an address where no host answers at all (not even a reset): the dial
    // times out, still within a second, and the entry goes too.
    lab.set("heidi", "203.0.113.99:3478");
    lab.assert_fails_fast(1, "frank", "heidi", &frank_key, "Home server unreachable");
    assert_eq!(lab.wait_home("heidi", None, Duration::from_secs(1)), None);
    eprintln!("keyed IDs and faults in the lab: {:.1?}", started.elapsed());
}
