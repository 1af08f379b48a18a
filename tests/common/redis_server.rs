//! A real `redis-server` per test, on a free loopback port, persisting
//! nothing, killed when dropped.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A `redis-server` this test started.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A node of a Redis Cluster (its state in `dir/nodes.conf`).
    cluster: bool,
}

/// A free loopback port; for a cluster node, one whose bus port (+10,000)
/// is free too.
fn free_port(cluster: bool) -> u16 {
    let bind = |port| TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    for _ in 0..100 {
        let port = bind(0)
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        if !cluster
            || port
                .checked_add(10_000)
                .is_some_and(|bus| bind(bus).is_ok())
        {
            return port;
        }
    }
    panic!("no loopback port with a free bus port above it")
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        Self::start_node(false).await
    }

    async fn start_node(cluster: bool) -> Self {
        let port = free_port(cluster);
        let dir = std::env::temp_dir().join(format!("wshub-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
        let mut server = Self {
            port,
            dir,
            child: None,
            cluster,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server with kill(1).
    pub async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("a running redis-server");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts the server again on the same port, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill().await;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(if self.cluster {
                &["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"][..]
            } else {
                &[]
            })
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "could not start redis-server ({err}): install it, e.g. \
                     `apt-get install -y redis-server` (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = self.connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A plain connection, to look at the server from outside the bridge.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// `PUBSUB CHANNELS`, sorted.
    pub async fn channels(&self) -> Vec<String> {
        let mut conn = self
            .connection()
            .await
            .expect("a connection to redis-server");
        let mut channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .query_async(&mut conn)
            .await
            .expect("PUBSUB CHANNELS");
        channels.sort();
        channels
    }

    /// `PUBSUB SHARDCHANNELS`.
    pub async fn shard_channels(&self) -> Vec<String> {
        let mut conn = self
            .connection()
            .await
            .expect("a connection to redis-server");
        redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .query_async(&mut conn)
            .await
            .expect("PUBSUB SHARDCHANNELS")
    }

    /// How many PUBLISH commands the server ran.
    pub async fn publish_calls(&self) -> u64 {
        self.calls("publish").await
    }

    /// How many times the server ran `command` (`INFO commandstats`).
    pub async fn calls(&self, command: &str) -> u64 {
        let mut conn = self
            .connection()
            .await
            .expect("a connection to redis-server");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().expect("a number of calls"))
    }
}

/// A Redis Cluster of a few primaries (no replicas), each a
/// [`RedisServer`] of this test.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` nodes, joins them with `redis-cli --cluster
    /// create`, and waits until every node says the cluster is ok.
    pub async fn start(primaries: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..primaries {
            nodes.push(RedisServer::start_node(true).await);
        }
        let cluster = Self { nodes };
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .await
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.until_ok().await;
        cluster
    }

    /// Waits (10 s at most) until every running node says
    /// `cluster_state:ok`.
    pub async fn until_ok(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut ok = true;
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                let info: Option<String> = match node.connection().await {
                    Ok(mut conn) => redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .ok(),
                    Err(_) => None,
                };
                ok &= info.is_some_and(|info| info.contains("cluster_state:ok"));
            }
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster was not ok within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Each node's `PUBSUB SHARDCHANNELS`, sorted, in node order.
    pub async fn shard_channels(&self) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for node in &self.nodes {
            let mut channels = node.shard_channels().await;
            channels.sort();
            all.push(channels);
        }
        all
    }

    /// The index of the node that has `channel` among its shard channels.
    pub async fn owner(&self, channel: &str) -> Option<usize> {
        let channels = self.shard_channels().await;
        channels
            .iter()
            .position(|on| on.iter().any(|c| c == channel))
    }

    /// How many times the cluster's nodes ran `command`, in all.
    pub async fn calls(&self, command: &str) -> u64 {
        let mut calls = 0;
        for node in &self.nodes {
            calls += node.calls(command).await;
        }
        calls
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
