//! `rss`: how much resident memory the server needs per idle connection.
//!
//! The client reads the server's `VmRSS`, opens the connections (every one
//! joins the room, as in the chat), waits, reads `VmRSS` again, and reports
//! the difference per connection. No message is sent.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;

use crate::args::Args;
use crate::orchestra::Common;
use crate::proc::{raise_nofile, vm_rss_kib};
use crate::wire::{Rng, connect, name};

pub fn orchestrate(args: &mut Args) -> Result<(), String> {
    let connections: usize = args.get("connections", 10_000)?;
    let settle: f64 = args.get("settle", 2.0)?;
    let mut common = Common::parse(args)?;
    args.finish()?;
    // Both ends of every connection live on this machine; children inherit.
    raise_nofile(connections as u64 + 1024);
    let mut rows = Vec::new();
    for kind in common.servers.clone() {
        let result = common.start(&kind).and_then(|server| {
            std::thread::sleep(Duration::from_millis(500));
            common.run_client(&[
                "rss-client".to_owned(),
                format!("--addr={}", server.addr),
                format!("--server-pid={}", server.pid),
                format!("--connections={connections}"),
                format!("--settle={settle}"),
            ])
        });
        match result {
            Ok(report) => {
                let get = |k: &str| report[k].as_f64().unwrap_or(0.0);
                let per = (get("after_kib") - get("before_kib")) / get("connected").max(1.0);
                eprintln!(
                    "{kind}: {} connections, VmRSS {} → {} KiB: {per:.2} KiB per connection",
                    report["connected"], report["before_kib"], report["after_kib"]
                );
                rows.push(format!(
                    "| {kind} | {} | {} | {} | {per:.2} |",
                    report["connected"], report["before_kib"], report["after_kib"]
                ));
            }
            Err(error) => {
                eprintln!("{kind}: FAILED: {error}");
                rows.push(format!("| {kind} | failed: {error} | | | |"));
            }
        }
    }
    println!();
    println!(
        "Server memory per idle WebSocket connection (each joined to the room), after {settle} s idle{}",
        common
            .bun_version()
            .map(|v| format!("; bun {v}"))
            .unwrap_or_default()
    );
    println!();
    println!(
        "| server | connections | VmRSS before (KiB) | VmRSS after (KiB) | KiB per connection |"
    );
    println!("|---|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// `rss-client --addr A --server-pid P --connections N --settle S`.
pub fn client_main(args: &mut Args) -> Result<(), String> {
    let addr: SocketAddr = args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?;
    let pid: u32 = args.get("server-pid", 0)?;
    let connections: usize = args.get("connections", 10_000)?;
    let settle: f64 = args.get("settle", 2.0)?;
    args.finish()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let before = vm_rss_kib(pid).ok_or("cannot read the server's VmRSS")?;
        let streams: Vec<_> = futures_util::stream::iter(0..connections)
            .map(|i| async move { connect(addr, &name(i), &mut Rng::new(i as u64)).await })
            .buffer_unordered(200)
            .collect()
            .await;
        let failed = streams.iter().filter(|s| s.is_err()).count();
        if let Some(Err(error)) = streams.iter().find(|s| s.is_err()) {
            eprintln!("{failed} connections failed, the first with: {error}");
        }
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let after = vm_rss_kib(pid).ok_or("cannot read the server's VmRSS")?;
        println!(
            "RESULT {}",
            json!({
                "connected": connections - failed,
                "failed": failed,
                "before_kib": before,
                "after_kib": after,
            })
        );
        drop(streams);
        Ok(())
    })
}
