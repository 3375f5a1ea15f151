//! A Redis Cluster master killed under a live subscription (issue 26): the seat channel of
//! a schedule lives on the shard that owns its hash tag's slot (sharded pub/sub), and when
//! that master dies its replica is promoted; subscribers must go on receiving events.
//!
//! Cluster only (`REDIS_CLUSTER=1 scripts/test`; skipped on one node). The test kills a
//! master, so it does it on a cluster of its own (six nodes on private ports, started and
//! stopped here), not on the suite's, whose other tests run meanwhile.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    common::{TestApp, layout, redis_cluster},
    websocket::{Ws, connect, init, recv, send},
};

const SEAT_CHANGES: &str =
    "subscription($s: ID!) { seatChanges(scheduleId: $s) { version resync seats { id status } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const SEATS: &str = "query($s: ID!) { schedule(id: $s) { seats { id status } } }";

/// Six Redis nodes in cluster mode (three masters, three replicas) on free ports below the
/// ephemeral range, killed when dropped.
struct PrivateCluster {
    ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    dir: PathBuf,
}

impl PrivateCluster {
    fn free(port: u16) -> bool {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
    }

    async fn start() -> Self {
        // Ports and their cluster bus (port + 10000) free; apart from scripts/test's 2171x.
        let base = (21731..21900)
            .step_by(10)
            .find(|b| (0..6).all(|i| Self::free(b + i)))
            .expect("six free ports for a private Redis Cluster");
        let ports: Vec<u16> = (0..6).map(|i| base + i).collect();
        let dir = std::env::temp_dir().join(format!(
            "boxoffice-cluster-failover-{base}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self {
            ports: ports.clone(),
            nodes: Vec::new(),
            dir: dir.clone(),
        };
        for p in &ports {
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &p.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (scripts/services installs Redis)");
            cluster.nodes.push(Some(child));
        }
        for p in &ports {
            cluster
                .wait(&format!(":{p} up"), || cluster.cli(*p, &["ping"]) == "PONG")
                .await;
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        cluster
            .wait("the cluster", || {
                ports
                    .iter()
                    .all(|p| cluster.cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
                    && ports.iter().all(|p| {
                        let r = cluster.cli(*p, &["info", "replication"]);
                        r.contains("role:master") || r.contains("master_link_status:up")
                    })
            })
            .await;
        cluster
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    async fn wait(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(Instant::now() < deadline, "{what}: not within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port of the master serving `key`'s slot, as node `ask` sees it (failed ones not).
    fn master_of(&self, ask: u16, key: &str) -> Option<u16> {
        let slot: u16 = self.cli(ask, &["cluster", "keyslot", key]).parse().ok()?;
        self.cli(ask, &["cluster", "nodes"]).lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                return None;
            }
            let serves = f[8..].iter().any(|r| {
                let mut b = r.splitn(2, '-').map(|x| x.parse::<u16>().ok());
                match (b.next().flatten(), b.next()) {
                    (Some(lo), Some(Some(hi))) => (lo..=hi).contains(&slot),
                    (Some(one), None) => one == slot,
                    _ => false,
                }
            });
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            serves.then_some(port)
        })
    }

    /// SIGKILL of the node on `port`: a machine lost.
    fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn subscribe(app: &TestApp, schedule_id: &str) -> Ws {
    let mut ws = connect(app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, None).await["type"], "connection_ack");
    send(&mut ws, json!({ "id": "s", "type": "subscribe", "payload": { "query": SEAT_CHANGES, "variables": { "s": schedule_id } } })).await;
    ws
}

async fn event(ws: &mut Ws) -> Value {
    let msg = recv(ws).await;
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["seatChanges"].clone()
}

/// Events until one shows `seat` held, or, as a client does on `resync: true` (changes may
/// have been missed: docs/api.md), the seat map read again shows it; the resyncs met on the
/// way are counted. `within` stays under the socket helper's own 10 s, which would panic
/// without saying why.
async fn until_held(
    app: &TestApp,
    schedule_id: &str,
    ws: &mut Ws,
    seat: &str,
    within: Duration,
) -> Result<usize, String> {
    let deadline = Instant::now() + within;
    let mut resyncs = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(e) = tokio::time::timeout(left, event(ws)).await else {
            return Err(format!(
                "no event showed seat {seat} held within {within:?} ({resyncs} resyncs)"
            ));
        };
        let held = |seats: &Value| {
            seats
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["id"] == seat && s["status"] == "HELD"))
        };
        if held(&e["seats"]) {
            return Ok(resyncs);
        }
        if e["resync"] == true {
            resyncs += 1;
            let map = app.ok(None, SEATS, json!({ "s": schedule_id })).await;
            if held(&map["schedule"]["seats"]) {
                return Ok(resyncs);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seat_changes_keep_arriving_after_the_master_of_their_channel_fails_over() {
    if redis_cluster().is_none() {
        return; // one Redis node: no master to fail over (REDIS_CLUSTER=1 scripts/test runs it)
    }
    let mut cluster = PrivateCluster::start().await;
    let urls = cluster.urls();
    let app = TestApp::spawn_with(&[("REDIS_CLUSTER_URLS", &urls)]).await;
    let show = app.show(layout(1, 10), 10).await;
    let mut ws = subscribe(&app, &show.schedule_id).await;
    event(&mut ws).await;
    let fan = app.sign_up("fan@example.com").await;
    let hold = |seat: usize| {
        app.ok(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[seat]] } }),
        )
    };
    hold(0).await;
    until_held(
        &app,
        &show.schedule_id,
        &mut ws,
        &show.seats[0],
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    // The master of the schedule's slot (its channel is `<prefix>live:{s:N}:seats`) dies.
    let tag = format!("{{s:{}}}", show.schedule_id);
    let ask = cluster.ports[0];
    let old = cluster.master_of(ask, &tag).unwrap();
    let ask = *cluster.ports.iter().find(|p| **p != old).unwrap();
    let killed = Instant::now();
    cluster.kill(old);
    cluster
        .wait("the replica's promotion", || {
            cluster.master_of(ask, &tag).is_some_and(|p| p != old)
                && cluster
                    .cli(ask, &["cluster", "info"])
                    .contains("cluster_state:ok")
        })
        .await;
    let promoted = killed.elapsed();
    let new = cluster.master_of(ask, &tag).unwrap();

    // A hold after the failover reaches the subscriber, through the promoted master.
    let started = Instant::now();
    let resyncs = loop {
        // The hold itself may meet the failover (the leader lease lives on that slot too).
        let body = app
            .gql(
                Some(&fan.access),
                RESERVE,
                json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } }),
            )
            .await;
        if body["errors"].is_null() {
            break until_held(
                &app,
                &show.schedule_id,
                &mut ws,
                &show.seats[1],
                Duration::from_secs(9),
            )
            .await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "holds did not come back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let resyncs = resyncs.unwrap_or_else(|e| panic!("after :{old} was killed and :{new} promoted: {e}"));
    println!(
        ":{old} killed, :{new} promoted after {promoted:?}; the next hold reached the subscriber {:?} later ({resyncs} resyncs)",
        started.elapsed()
    );
    // And one more: the subscription is on the new master for good.
    hold(2).await;
    until_held(
        &app,
        &show.schedule_id,
        &mut ws,
        &show.seats[2],
        Duration::from_secs(5),
    )
    .await
    .unwrap();
}
