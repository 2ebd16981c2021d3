//! Three `natlens server --registry` processes sharing one Redis on loopback: calls across
//! servers (UDP and TCP logins, open and keyed IDs), entries that move with a keyed ID and
//! vanish with a logout, and the faults: Redis stopped and restarted, a stale entry naming a
//! dead server, a registry that is away when a call needs it.
//!
//! Each test starts its own `redis-server` on a free loopback port with a temporary
//! directory, never a system service, and kills it on drop.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::event_client::Client;
use common::programs::require_tools;
use common::ServerProcess;
use serde_json::Value;

/// Every server's --registry-refresh.
const REFRESH: Duration = Duration::from_secs(1);

/// A private `redis-server` on loopback, killed (and its directory removed) on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one on a free port; `None` (SKIPPED) when redis-server is not installed.
    fn start(test: &str) -> Option<Redis> {
        require_tools(test, &["redis-server"], "apt-get install redis-server")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("natlens-redis-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            child: None,
            port,
            dir,
        };
        redis.restart();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port, empty, and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.connection().is_none() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    /// The home server an ID's entry names, if any.
    fn home_of(&self, id: &str) -> Option<String> {
        let mut conn = self.connection().expect("redis answers");
        redis::cmd("GET")
            .arg(format!("natlens:home:{id}"))
            .query(&mut conn)
            .unwrap()
    }

    /// Waits up to `timeout` for `id`'s entry to be `home`.
    fn wait_home(&self, id: &str, home: Option<&str>, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.home_of(id);
            if now.as_deref() == home || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn set(&self, id: &str, home: &str) {
        let mut conn = self.connection().expect("redis answers");
        redis::cmd("SET")
            .arg(format!("natlens:home:{id}"))
            .arg(home)
            .query::<()>(&mut conn)
            .unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on loopback right now (for TCP; the kernel does not hand it out again at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `natlens server --registry` named `name` on a loopback port of its own.
fn server(redis: &Redis, name: &str, extra: &[&str]) -> ServerProcess {
    let url = redis.url();
    let refresh = format!("{}ms", REFRESH.as_millis());
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--name",
        name,
        "--registry",
        &url,
        "--registry-refresh",
        &refresh,
    ];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    assert!(
        server
            .wait_for_log("registry_up", Duration::from_secs(5))
            .is_some(),
        "{name} reaches redis: {:?}",
        server.log_lines("")
    );
    server
}

fn natlens() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natlens"));
    command.stdin(Stdio::null()).env_remove("NATLENS_KEY");
    command
}

/// A `natlens login --json` holding a session (killed on drop), once it has logged in.
fn login(server: SocketAddr, id: &str, transport: &str, key: Option<&Path>) -> Client {
    let mut command = natlens();
    command.args(["login", "--server", &server.to_string(), "--id", id]);
    command.args(["--transport", transport, "--json", "--keepalive", "1s"]);
    if let Some(key) = key {
        command.arg("--key-file").arg(key);
    }
    let mut client = Client::start(id, command);
    let first = client
        .next_event(Duration::from_secs(10))
        .expect("an event from natlens login");
    assert_eq!(first["event"], "logged_in", "{first}");
    client
}

/// `natlens call CALLEE --no-punch --json` through `server` as `me`, and how long it took.
fn call(
    server: &ServerProcess,
    me: &str,
    callee: &str,
    transport: &str,
    key: Option<&Path>,
) -> (Output, Duration) {
    let mut command = natlens();
    command.args(["call", callee, "--server", &server.addr().to_string()]);
    command.args(["--id", me, "--login-transport", transport]);
    command.args(["--json", "--no-punch", "--call-timeout", "5s"]);
    if let Some(key) = key {
        command.arg("--key-file").arg(key);
    }
    let started = Instant::now();
    let output = command.output().expect("natlens call runs");
    (output, started.elapsed())
}

/// A call that must reach `callee`'s login: the callee hears it, with the same call ID.
fn assert_reaches(
    server: &ServerProcess,
    me: &str,
    callee: &mut Client,
    callee_id: &str,
    transport: &str,
    key: Option<&Path>,
) {
    let (output, _) = call(server, me, callee_id, transport, key);
    assert!(
        output.status.success(),
        "{me} -> {callee_id}: {} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    let incoming = callee
        .next_event(Duration::from_secs(5))
        .expect("an event from the callee's login");
    assert_eq!(incoming["event"], "incoming_call", "{incoming}");
    assert_eq!(incoming["caller"], me);
    assert_eq!(incoming["call_id"], report["call_id"]);
}

/// The link address a server's entries name (its first --listen address).
fn home(server: &ServerProcess) -> String {
    server.addr().to_string()
}

#[test]
fn calls_cross_three_servers_through_the_registry_and_entries_follow_sessions() {
    let Some(redis) = Redis::start("matrix") else {
        return;
    };
    let s1 = server(&redis, "s1", &[]);
    let s2 = server(&redis, "s2", &[]);
    let s3 = server(&redis, "s3", &[]);
    let mut bob = login(s2.addr(), "bob", "udp", None);
    let mut dave = login(s3.addr(), "dave", "tcp", None);
    assert_eq!(
        redis.wait_home("bob", Some(&home(&s2)), Duration::from_secs(2)),
        Some(home(&s2))
    );
    assert_eq!(
        redis.wait_home("dave", Some(&home(&s3)), Duration::from_secs(2)),
        Some(home(&s3))
    );
    // Every server reaches both, over both transports.
    assert_reaches(&s1, "carol", &mut bob, "bob", "udp", None);
    assert_reaches(&s3, "erin", &mut bob, "bob", "tcp", None);
    assert_reaches(&s1, "frank", &mut dave, "dave", "tcp", None);
    assert_reaches(&s2, "grace", &mut dave, "dave", "udp", None);
    assert_reaches(&s1, "heidi", &mut bob, "bob", "tcp", None);
    // The link s1 dialled to s2 was reused for the second call: one link, not one per call.
    let s1_to_s2 = s1
        .log_lines("peer_up")
        .iter()
        .filter(|line| line.contains("name=s2"))
        .count();
    assert_eq!(s1_to_s2, 1, "{:?}", s1.log_lines("peer_"));
    assert!(s2
        .log_lines("from=s1")
        .iter()
        .any(|line| line.contains("callee=bob")));
    // The callers' own one-shot sessions left no entries; a closed TCP session takes its
    // entry along.
    for caller in ["carol", "erin", "frank", "grace", "heidi"] {
        assert_eq!(
            redis.wait_home(caller, None, Duration::from_secs(2)),
            None,
            "{caller}"
        );
    }
    // Redis forgets the scripts (SCRIPT FLUSH, as an operator or a failover might): the
    // release that EVALSHA cannot run is retried after loading them again.
    let mut conn = redis.connection().expect("redis answers");
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut conn)
        .unwrap();
    // Within a second: the entry's TTL (three refreshes) cannot explain it.
    drop(dave);
    assert_eq!(redis.wait_home("dave", None, Duration::from_secs(1)), None);
    let (output, elapsed) = call(&s1, "ivan", "dave", "udp", None);
    assert_eq!(output.status.code(), Some(natlens::exit::NO_CALLEE.into()));
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(s1.stats().contains("registry=up"));
}

/// A scratch directory with a credentials file and key files; removed on drop.
struct Keys(PathBuf);

impl Keys {
    fn new(tag: &str) -> Keys {
        let dir =
            std::env::temp_dir().join(format!("natlens-regkeys-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = Keys(dir);
        let mut text = String::new();
        for id in ["alice", "bob", "carol"] {
            text.push_str(&format!("{id} {id}-key\n"));
            keys.write(&format!("{id}.key"), &format!("{id}-key\n"));
        }
        keys.write("credentials", &text);
        keys
    }

    fn write(&self, name: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_keyed_id_taken_over_on_another_server_moves_its_entry() {
    let Some(redis) = Redis::start("keyed") else {
        return;
    };
    let keys = Keys::new("keyed");
    let creds = keys.path("credentials");
    let creds = creds.to_str().unwrap();
    let extra = ["--credentials", creds, "--udp-expiry", "2s"];
    let s1 = server(&redis, "s1", &extra);
    let s2 = server(&redis, "s2", &extra);
    let s3 = server(&redis, "s3", &extra);
    let alice_key = keys.path("alice.key");
    let bob_key = keys.path("bob.key");
    let mut old_bob = login(s2.addr(), "bob", "udp", Some(&bob_key));
    redis.wait_home("bob", Some(&home(&s2)), Duration::from_secs(2));
    assert_reaches(&s1, "alice", &mut old_bob, "bob", "tcp", Some(&alice_key));
    // bob logs in on s3 with his key: the entry moves there, and calls follow it.
    let mut bob = login(s3.addr(), "bob", "tcp", Some(&bob_key));
    assert_eq!(
        redis.wait_home("bob", Some(&home(&s3)), Duration::from_secs(2)),
        Some(home(&s3))
    );
    assert_reaches(&s1, "alice", &mut bob, "bob", "udp", Some(&alice_key));
    // s2 still holds the old session for a while: its refreshes must not take the entry
    // back, and its expiry must not delete s3's entry.
    drop(old_bob);
    assert!(
        s2.wait_for_log("expire", Duration::from_secs(5)).is_some(),
        "the old session expires on s2"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(redis.home_of("bob"), Some(home(&s3)));
    assert_reaches(&s2, "alice", &mut bob, "bob", "udp", Some(&alice_key));
}

#[test]
fn faults_redis_restart_a_stale_entry_and_a_missing_registry_end_in_clear_answers() {
    let Some(mut redis) = Redis::start("faults") else {
        return;
    };
    let s1 = server(&redis, "s1", &[]);
    let s2 = server(&redis, "s2", &[]);
    let mut bob = login(s2.addr(), "bob", "tcp", None);
    let mut alice = login(s2.addr(), "alice", "udp", None);
    redis.wait_home("alice", Some(&home(&s2)), Duration::from_secs(2));

    // A stale entry naming a server that is gone: a clear error within a second.
    let dead = format!("127.0.0.1:{}", free_port());
    redis.set("ghost", &dead);
    let (output, elapsed) = call(&s1, "carol", "ghost", "udp", None);
    assert!(!output.status.success());
    let failure: Value = serde_json::from_slice(&output.stdout).expect("a failure object");
    let message = failure["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Home server unreachable"), "{failure}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    // The dead dial deleted the stale entry: the next call is "not found" at once, without
    // dialling the dead home again.
    assert_eq!(redis.wait_home("ghost", None, Duration::from_secs(1)), None);
    let (output, elapsed) = call(&s1, "carol", "ghost", "udp", None);
    assert_eq!(output.status.code(), Some(natlens::exit::NO_CALLEE.into()));
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    // Only the entries of the IDs called go: another ID naming the same dead home stays
    // until it is called or its TTL runs out.
    redis.set("ghost2", &dead);
    redis.set("ghost3", &dead);
    let (output, _) = call(&s1, "carol", "ghost2", "udp", None);
    assert!(!output.status.success());
    assert_eq!(
        redis.wait_home("ghost2", None, Duration::from_secs(1)),
        None
    );
    assert_eq!(
        redis.home_of("ghost3"),
        Some(dead.clone()),
        "only the IDs called"
    );

    // Redis goes away: both servers say so, and s2 still serves its own sessions.
    redis.stop();
    for server in [&s1, &s2] {
        assert!(
            server
                .wait_for_log("registry_down", Duration::from_secs(3))
                .is_some(),
            "{:?}",
            server.log_lines("registry")
        );
    }
    assert!(s2.stats().contains("registry=down"));
    assert_reaches(&s2, "dave", &mut bob, "bob", "udp", None);
    // s1 cannot know where alice lives: it says so within a second instead of hanging.
    let (output, elapsed) = call(&s1, "erin", "alice", "tcp", None);
    let failure: Value = serde_json::from_slice(&output.stdout).expect("a failure object");
    let message = failure["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Registry unavailable"), "{failure}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    // Redis returns empty: every session is registered again within one refresh interval of
    // Redis answering (the servers retry every half second and re-register at once), with a
    // quarter second for scheduling on a loaded machine.
    redis.restart();
    let back = Instant::now();
    assert_eq!(
        redis.wait_home("bob", Some(&home(&s2)), Duration::from_secs(3)),
        Some(home(&s2))
    );
    assert_eq!(
        redis.wait_home("alice", Some(&home(&s2)), Duration::from_secs(1)),
        Some(home(&s2))
    );
    let took = back.elapsed();
    eprintln!(
        "sessions registered again {} ms after Redis came back",
        took.as_millis()
    );
    assert!(took < REFRESH + Duration::from_millis(250), "{took:?}");
    assert!(s2
        .wait_for_log("sessions=2", Duration::from_secs(1))
        .is_some());
    assert!(s1
        .wait_for_count("registry_up", 2, Duration::from_secs(2))
        .eq(&2));
    assert_reaches(&s1, "frank", &mut alice, "alice", "udp", None);
}

/// Three `redis-server --cluster-enabled yes` masters on loopback joined by `redis-cli
/// --cluster create`; killed and removed on drop.
struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    fn start(test: &str) -> Option<Cluster> {
        require_tools(
            test,
            &["redis-server", "redis-cli"],
            "apt-get install redis-server",
        )?;
        let mut nodes = Vec::new();
        for n in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("natlens-redis-{test}{n}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--port", &port.to_string(), "--dir"])
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server");
            let node = Redis {
                child: Some(child),
                port,
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while node.connection().is_none() {
                assert!(Instant::now() < deadline, "a cluster node did not come up");
                std::thread::sleep(Duration::from_millis(20));
            }
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(created.status.success(), "{created:?}");
        let cluster = Cluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.is_ok() {
            assert!(Instant::now() < deadline, "the cluster did not settle");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(cluster)
    }

    fn is_ok(&self) -> bool {
        self.nodes.iter().all(|node| {
            let Some(mut conn) = node.connection() else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        })
    }

    /// The `natlens:home:` keys each master holds.
    fn keys_per_node(&self) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|node| {
                let mut conn = node.connection().expect("a node answers");
                redis::cmd("KEYS")
                    .arg("natlens:home:*")
                    .query(&mut conn)
                    .unwrap()
            })
            .collect()
    }
}

#[test]
fn a_three_master_redis_cluster_holds_the_registry() {
    let Some(cluster) = Cluster::start("cluster") else {
        return;
    };
    let urls: Vec<String> = cluster.nodes.iter().map(Redis::url).collect();
    let mut args = vec!["--registry-cluster", "--registry-refresh", "1s"];
    for url in &urls {
        args.extend(["--registry", url.as_str()]);
    }
    let start = |name: &'static str| {
        let mut all = vec!["--listen", "127.0.0.1:0", "--name", name];
        all.extend(args.iter().copied());
        let server = ServerProcess::start(&all);
        assert!(server
            .wait_for_log("registry_up", Duration::from_secs(5))
            .is_some());
        server
    };
    let (s1, s2) = (start("s1"), start("s2"));
    let ids = ["bob", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
    let mut logins: Vec<Client> = ids
        .iter()
        .map(|id| login(s2.addr(), id, "tcp", None))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut per_node = cluster.keys_per_node();
    while per_node.iter().map(Vec::len).sum::<usize>() < ids.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        per_node = cluster.keys_per_node();
    }
    assert_eq!(
        per_node.iter().map(Vec::len).sum::<usize>(),
        ids.len(),
        "{per_node:?}"
    );
    // One key per ID, spread by ID over the masters' slots (8 IDs on one master would
    // mean a hash tag pinned them all to one slot).
    assert!(
        per_node.iter().filter(|keys| !keys.is_empty()).count() >= 2,
        "{per_node:?}"
    );
    assert_reaches(&s1, "alice", &mut logins[0], "bob", "udp", None);
    // A logout deletes through the one-key script on whichever master holds the key.
    drop(logins);
    let deadline = Instant::now() + Duration::from_secs(3);
    while cluster.keys_per_node().iter().any(|keys| !keys.is_empty()) {
        assert!(Instant::now() < deadline, "{:?}", cluster.keys_per_node());
        std::thread::sleep(Duration::from_millis(50));
    }
}
