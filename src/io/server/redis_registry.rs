//! The shared registry on Redis (`--registry`): one thread that owns the Redis connection and
//! carries out the core's [`RegistryOp`]s, so that the server's event loop never waits for
//! Redis. Ops arrive over a channel; whatever is queued when the thread looks is sent as one
//! pipeline (a turn's logins, a tick's refreshes and the lookups between them: one round
//! trip); answers go back over another channel, with a [`mio::Waker`] to wake the loop.
//!
//! The `redis` crate's synchronous client is enough here, and simpler than an async runtime:
//! the thread does one thing at a time, and pipelining, not concurrency, is what makes the
//! writes cheap.
//!
//! Key layout (documented in `natlens server --help`): one key per ID, `natlens:home:<ID>`,
//! holding the home server's link address (`IP:PORT`) with a TTL. Every command touches
//! exactly one key, so on a Redis Cluster the keys spread over the slots by ID and no hash
//! tag is needed; the compare-and-delete and the refresh are one-key Lua scripts, run by SHA1.
//!
//! When Redis is unreachable the thread says so once, answers lookups as failed at once, and
//! tries again every [`RECONNECT`]; a connection that comes back (a restarted Redis has
//! forgotten everything) is reported, and the core re-registers every session.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redis::{ConnectionLike, Script, ServerErrorKind, Value};

use crate::core::server::home_registry::{RegistryOp, RegistryReply};

/// Prefix of every key: `natlens:home:<ID>`.
pub const KEY_PREFIX: &str = "natlens:home:";
/// How long one Redis round trip may take before the registry counts as unreachable.
const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// Wait between two attempts to reach an unreachable Redis.
const RECONNECT: Duration = Duration::from_millis(500);
/// An idle connection is checked this often (a PING), so a Redis restart is noticed within
/// about this long even when nothing else is written.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// Most commands in one pipeline.
const PIPELINE_CHUNK: usize = 10_000;

/// Renews the entry only when it names this server or is gone (a restarted Redis). Public for
/// the registry bench, which compares running it by SHA1 with sending its text.
pub const REFRESH_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == false or v == ARGV[1] then \
    return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 end return 0";
/// Deletes the entry only when it still names the given server (this one, on a logout; a dead
/// home, on an eviction).
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// The two scripts, run by their SHA1 (EVALSHA) so that a million refreshes do not ship the
/// script text a million times; [`Backend::load_scripts`] loads them on every connection, and
/// a NOSCRIPT (a `SCRIPT FLUSH`, a failover to a node that never saw them) loads them again
/// and retries, as the `redis` crate's own `ScriptInvocation::invoke` does for one command.
struct Scripts {
    refresh: Script,
    release: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        refresh: Script::new(REFRESH_SCRIPT),
        release: Script::new(RELEASE_SCRIPT),
    })
}

/// Where the registry is: one Redis, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone)]
pub struct RegistryTarget {
    pub urls: Vec<String>,
    pub cluster: bool,
}

impl RegistryTarget {
    /// The first URL without its password, for messages.
    pub fn shown(&self) -> String {
        let url = self.urls.first().map(String::as_str).unwrap_or_default();
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}{}", &url[..scheme + 3], &url[at + 1..])
            }
            _ => url.to_owned(),
        }
    }
}

/// The loop's end of the registry thread.
pub struct RedisRegistry {
    ops: Option<Sender<RegistryOp>>,
    replies: Receiver<RegistryReply>,
    thread: Option<JoinHandle<()>>,
}

impl RedisRegistry {
    /// Starts the thread; entries name `home` and live `ttl` past their last write. `wake`
    /// is called after each batch of replies.
    pub fn start(
        target: RegistryTarget,
        home: String,
        ttl: Duration,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> anyhow::Result<Self> {
        let (ops_tx, ops_rx) = mpsc::channel();
        let (replies_tx, replies_rx) = mpsc::channel();
        let worker = Worker {
            target,
            home,
            ttl_ms: ttl.as_millis().max(1) as u64,
            ops: ops_rx,
            replies: replies_tx,
            wake,
            conn: None,
        };
        let thread = std::thread::Builder::new()
            .name("natlens-registry".into())
            .spawn(move || worker.run())?;
        Ok(RedisRegistry {
            ops: Some(ops_tx),
            replies: replies_rx,
            thread: Some(thread),
        })
    }

    pub fn send(&self, op: RegistryOp) {
        if let Some(ops) = &self.ops {
            let _ = ops.send(op);
        }
    }

    pub fn try_reply(&self) -> Option<RegistryReply> {
        self.replies.try_recv().ok()
    }
}

impl Drop for RedisRegistry {
    fn drop(&mut self) {
        // Closing the channel ends the thread after what is queued.
        self.ops.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection to one Redis or to a cluster.
enum Backend {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Backend {
    fn open(target: &RegistryTarget) -> redis::RedisResult<Backend> {
        if target.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(target.urls.clone())
                .connection_timeout(IO_TIMEOUT)
                .response_timeout(IO_TIMEOUT)
                .build()?;
            return Ok(Backend::Cluster(Box::new(client.get_connection()?)));
        }
        let url = target.urls.first().map(String::as_str).unwrap_or_default();
        let conn = redis::Client::open(url)?.get_connection_with_timeout(IO_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Backend::Single(conn))
    }

    /// Opens a connection with the scripts loaded (on every master of a cluster: the crate
    /// routes SCRIPT LOAD to all of them).
    fn open_loaded(target: &RegistryTarget) -> redis::RedisResult<Backend> {
        let mut backend = Backend::open(target)?;
        backend.load_scripts()?;
        Ok(backend)
    }

    fn load_scripts(&mut self) -> redis::RedisResult<()> {
        let conn: &mut dyn ConnectionLike = match self {
            Backend::Single(conn) => conn,
            Backend::Cluster(conn) => conn.as_mut(),
        };
        for script in [&scripts().refresh, &scripts().release] {
            script.load(conn)?;
        }
        Ok(())
    }

    /// [`Backend::pipeline`], and once more after loading the scripts when Redis has lost
    /// them (NOSCRIPT). Every command is idempotent, so running a chunk twice is harmless.
    fn pipeline_loaded(&mut self, commands: Vec<redis::Cmd>) -> redis::RedisResult<Vec<Value>> {
        match self.pipeline(commands.clone()) {
            Err(error) if error.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.load_scripts()?;
                self.pipeline(commands)
            }
            other => other,
        }
    }

    /// Sends `commands` as one pipeline; one value per command, in order.
    fn pipeline(&mut self, commands: Vec<redis::Cmd>) -> redis::RedisResult<Vec<Value>> {
        match self {
            Backend::Single(conn) => {
                let mut pipe = redis::pipe();
                for command in commands {
                    pipe.add_command(command);
                }
                pipe.query(conn)
            }
            Backend::Cluster(conn) => {
                let mut pipe = redis::cluster::cluster_pipe();
                for command in commands {
                    pipe.add_command(command);
                }
                pipe.query(conn.as_mut())
            }
        }
    }

    fn ping(&mut self) -> bool {
        match self {
            Backend::Single(conn) => conn.check_connection(),
            Backend::Cluster(conn) => conn.check_connection(),
        }
    }
}

struct Worker {
    target: RegistryTarget,
    home: String,
    ttl_ms: u64,
    ops: Receiver<RegistryOp>,
    replies: Sender<RegistryReply>,
    wake: Arc<dyn Fn() + Send + Sync>,
    conn: Option<Backend>,
}

impl Worker {
    fn run(mut self) {
        let mut reported_down = false;
        loop {
            if self.conn.is_none() {
                match Backend::open_loaded(&self.target) {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        reported_down = false;
                        self.reply(vec![RegistryReply::Connected]);
                    }
                    Err(error) => {
                        if !reported_down {
                            reported_down = true;
                            self.lost(&error.to_string(), Vec::new());
                        }
                        if !self.refuse_for(RECONNECT) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let first = match self.ops.recv_timeout(HEALTH_CHECK) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    if !self.conn.as_mut().is_some_and(Backend::ping) {
                        self.conn = None;
                        reported_down = true;
                        self.lost("the connection to Redis broke", Vec::new());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            batch.extend(self.ops.try_iter());
            if let Err(error) = self.carry_out(&batch) {
                self.conn = None;
                reported_down = true;
                self.lost(&error.to_string(), lookups_of(&batch));
            }
        }
    }

    /// While Redis is away: answers lookups as failed (and drops writes: the core redoes them
    /// on reconnection) for `wait`. False when the server is gone.
    fn refuse_for(&mut self, wait: Duration) -> bool {
        let until = std::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.ops.recv_timeout(left) {
                Ok(RegistryOp::Lookup { call, .. }) => {
                    self.reply(vec![RegistryReply::LookupFailed { call }])
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn lost(&self, reason: &str, lookups: Vec<u64>) {
        let mut replies = vec![RegistryReply::Lost {
            reason: reason.to_owned(),
        }];
        replies.extend(
            lookups
                .into_iter()
                .map(|call| RegistryReply::LookupFailed { call }),
        );
        self.reply(replies);
    }

    fn reply(&self, replies: Vec<RegistryReply>) {
        for reply in replies {
            let _ = self.replies.send(reply);
        }
        (self.wake)();
    }

    /// One pipeline for the whole batch; the lookups' answers go back in one wake-up.
    fn carry_out(&mut self, batch: &[RegistryOp]) -> redis::RedisResult<()> {
        let (commands, lookups) = commands_for(batch, &self.home, self.ttl_ms);
        let conn = self.conn.as_mut().expect("connected");
        let mut values = Vec::with_capacity(commands.len());
        let mut commands = commands.into_iter().peekable();
        while commands.peek().is_some() {
            // Bounded pipelines: a million refreshes after a reconnection must not hold the
            // lookups queued behind them for one enormous round trip.
            let chunk: Vec<redis::Cmd> = commands.by_ref().take(PIPELINE_CHUNK).collect();
            values.extend(conn.pipeline_loaded(chunk)?);
        }
        if lookups.is_empty() {
            return Ok(());
        }
        let replies = lookups
            .into_iter()
            .map(|(index, call)| RegistryReply::Found {
                call,
                value: values
                    .get(index)
                    .and_then(|value| redis::from_redis_value_ref(value).ok())
                    .flatten(),
            })
            .collect();
        self.reply(replies);
        Ok(())
    }
}

/// The calls of the lookups in a batch.
fn lookups_of(batch: &[RegistryOp]) -> Vec<u64> {
    batch
        .iter()
        .filter_map(|op| match op {
            RegistryOp::Lookup { call, .. } => Some(*call),
            _ => None,
        })
        .collect()
}

/// The Redis commands for a batch of ops, and for each lookup the index of its answer.
pub fn commands_for(
    batch: &[RegistryOp],
    home: &str,
    ttl_ms: u64,
) -> (Vec<redis::Cmd>, Vec<(usize, u64)>) {
    let mut commands = Vec::new();
    let mut lookups = Vec::new();
    let key = |id: &str| format!("{KEY_PREFIX}{id}");
    let script = |script: &Script, id: &str, home: &str| {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(1).arg(key(id)).arg(home);
        cmd
    };
    let scripts = scripts();
    for op in batch {
        match op {
            RegistryOp::Claim { ids } => commands.extend(ids.iter().map(|id| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key(id)).arg(home).arg("PX").arg(ttl_ms);
                cmd
            })),
            RegistryOp::Refresh { ids } => commands.extend(ids.iter().map(|id| {
                let mut cmd = script(&scripts.refresh, id, home);
                cmd.arg(ttl_ms);
                cmd
            })),
            RegistryOp::Release { ids } => {
                commands.extend(ids.iter().map(|id| script(&scripts.release, id, home)))
            }
            RegistryOp::Evict { home: dead, ids } => {
                let dead = dead.to_string();
                commands.extend(ids.iter().map(|id| script(&scripts.release, id, &dead)))
            }
            RegistryOp::Lookup { call, id } => {
                lookups.push((commands.len(), *call));
                let mut cmd = redis::cmd("GET");
                cmd.arg(key(id));
                commands.push(cmd);
            }
        }
    }
    (commands, lookups)
}

/// Starts the registry thread when `--registry` is on, waking the loop through `poll`.
pub(super) fn start_for(
    poll: &mio::Poll,
    options: &super::ServeOptions,
    core: &mut crate::core::server::ServerCore,
    first_listener: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<RedisRegistry>> {
    let Some(target) = options.registry.clone() else {
        return Ok(None);
    };
    let mut home = options
        .link_address
        .ok_or_else(|| anyhow::anyhow!("--registry needs --link-address"))?;
    // `--listen IP:0` (tests): the entries name the port the kernel chose.
    if let (0, Some(bound)) = (home.port(), first_listener) {
        home.set_port(bound.port());
    }
    core.enable_registry(home, options.registry_refresh);
    let ttl = core.home_registry().expect("just enabled").ttl();
    let waker = mio::Waker::new(poll.registry(), mio::Token(super::REGISTRY_WAKER))?;
    let wake = Arc::new(move || {
        let _ = waker.wake();
    });
    RedisRegistry::start(target, home.to_string(), ttl, wake).map(Some)
}

impl super::Server {
    /// The registry thread has answers: hand them to the core.
    pub(super) fn registry_replies(
        &mut self,
        now: std::time::Instant,
        reporter: &mut dyn super::Reporter,
    ) {
        let Some(registry) = &self.registry else {
            return;
        };
        let mut any = false;
        while let Some(reply) = registry.try_reply() {
            self.core.registry_reply(now, reply);
            any = true;
        }
        if any {
            self.drain_core(now, reporter);
        }
    }

    /// Carries the core's registry ops to the thread and dials the home servers it asks for.
    /// True when a dial may have given the core more to say.
    pub(super) fn registry_out(&mut self, now: std::time::Instant) -> bool {
        let Some(registry) = &self.registry else {
            return false;
        };
        while let Some(op) = self.core.poll_registry_op() {
            registry.send(op);
        }
        let mut dialled = false;
        while let Some(addr) = self.core.poll_dial() {
            self.dial_home(now, addr);
            dialled = true;
        }
        dialled
    }
}
