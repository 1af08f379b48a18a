//! `rss`: how much resident memory the server needs per idle connection.
//!
//! The client reads the server's `VmRSS`, opens the connections (every one
//! joins the room, as in the chat), waits, reads `VmRSS` again, and reports
//! the difference per connection. No message is sent, unless the client
//! offers `permessage-deflate` (`--deflate`, and always for the deflate
//! servers): then every connection sends one binary message, compressed when
//! the server accepted the offer, and waits for the server's echo, so that
//! the server's lazily created inflater and compressor exist before the
//! second reading.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use testkit::proc::vm_rss_kib;
use testkit::raise_nofile;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wshub::protocol::encode_frame;
use wshub::protocol::frame::OpCode;

use crate::args::Args;
use crate::orchestra::Common;
use crate::servers;
use crate::tls;
use crate::wire::{
    Compressor, Connected, DEFLATE_OFFER, FrameReader, MESSAGES, RSV1, Rng, connect_with, name,
};

/// Connections opened (and messages exchanged) at once.
const CONCURRENCY: usize = 200;

pub fn orchestrate(args: &mut Args) -> Result<(), String> {
    let connections: usize = args.get("connections", 10_000)?;
    let settle: f64 = args.get("settle", 2.0)?;
    let deflate = args.flag("deflate");
    let message_bytes: usize = args.get("message-bytes", 1024)?;
    let tls = args.flag("tls");
    let mut common = Common::parse(args)?;
    args.finish()?;
    if tls {
        common.enable_tls()?;
    }
    // Both ends of every connection live on this machine; children inherit.
    raise_nofile(connections as u64 + 1024)?;
    let mut rows = Vec::new();
    let mut any_deflate = false;
    for kind in common.servers.clone() {
        let offer = deflate || servers::deflate_mode(&kind).is_some();
        any_deflate |= offer;
        let result = common.start(&kind).and_then(|server| {
            std::thread::sleep(Duration::from_millis(500));
            let mut client_args = vec![
                "rss-client".to_owned(),
                format!("--addr={}", server.addr),
                format!("--server-pid={}", server.pid),
                format!("--connections={connections}"),
                format!("--settle={settle}"),
                format!("--message-bytes={message_bytes}"),
            ];
            if offer {
                client_args.push("--deflate".to_owned());
            }
            if let Some(dir) = common.tls_dir() {
                client_args.push(format!("--tls={}", dir.display()));
            }
            if servers::speaks_h2(&kind) {
                client_args.push("--h2".to_owned());
            }
            common.run_client(&client_args)
        });
        match result {
            Ok(report) => {
                let get = |k: &str| report[k].as_f64().unwrap_or(0.0);
                let per = (get("after_kib") - get("before_kib")) / get("connected").max(1.0);
                eprintln!(
                    "{kind}: {} connections, VmRSS {} → {} KiB: {per:.2} KiB per connection{}",
                    report["connected"],
                    report["before_kib"],
                    report["after_kib"],
                    deflate_note(&report)
                );
                rows.push((kind, Ok((report, per))));
            }
            Err(error) => {
                eprintln!("{kind}: FAILED: {error}");
                rows.push((kind, Err(error)));
            }
        }
    }
    println!();
    println!(
        "Server memory per idle WebSocket connection{} (each joined to the room), after {settle} s idle{}{}",
        if common.tls_dir().is_some() {
            " over wss://"
        } else {
            ""
        },
        if any_deflate {
            format!(
                "; deflate rows: the client offered `{DEFLATE_OFFER}` and every connection \
                 exchanged one {message_bytes}-byte binary message each way first"
            )
        } else {
            String::new()
        },
        common
            .bun_version()
            .map(|v| format!("; bun {v}"))
            .unwrap_or_default()
    );
    println!();
    if any_deflate {
        println!(
            "| server | connections | deflate agreed | echoes (RSV1) | VmRSS before (KiB) | VmRSS after (KiB) | KiB per connection |"
        );
        println!("|---|---:|---|---:|---:|---:|---:|");
    } else {
        println!(
            "| server | connections | VmRSS before (KiB) | VmRSS after (KiB) | KiB per connection |"
        );
        println!("|---|---:|---:|---:|---:|");
    }
    for (kind, row) in rows {
        match row {
            Ok((report, per)) => {
                let deflate_cells = if any_deflate {
                    let echoes = match report["echoes"].as_u64() {
                        Some(n) => format!("{n} ({})", report["echoes_compressed"]),
                        None => "no exchange".to_owned(),
                    };
                    format!(
                        " {} | {echoes} |",
                        report["deflate"].as_str().unwrap_or("–")
                    )
                } else {
                    String::new()
                };
                println!(
                    "| {kind} | {} |{deflate_cells} {} | {} | {per:.2} |",
                    report["connected"], report["before_kib"], report["after_kib"]
                );
            }
            Err(error) => {
                let blanks = if any_deflate { " | | | | |" } else { " | | |" };
                println!("| {kind} | failed: {error} |{blanks}");
            }
        }
    }
    Ok(())
}

fn deflate_note(report: &Value) -> String {
    if report["deflate_offered"].as_bool() != Some(true) {
        return String::new();
    }
    format!(
        "; deflate agreed on {} ({}); {} echoes, {} of them RSV1; {} exchanges failed",
        report["deflate_negotiated"],
        report["deflate"].as_str().unwrap_or("declined"),
        report["echoes"],
        report["echoes_compressed"],
        report["exchange_failures"],
    )
}

/// `rss-client --addr A --server-pid P --connections N --settle S [--deflate] [--tls DIR] [--h2]`
/// (`--h2`: each connection over its own h2c connection, see [`crate::h2`]).
pub fn client_main(args: &mut Args) -> Result<(), String> {
    let addr: SocketAddr = args.get("addr", SocketAddr::from(([127, 0, 0, 1], 4001)))?;
    let pid: u32 = args.get("server-pid", 0)?;
    let connections: usize = args.get("connections", 10_000)?;
    let settle: f64 = args.get("settle", 2.0)?;
    let deflate = args.flag("deflate");
    let message_bytes: usize = args.get("message-bytes", 1024)?;
    let tls = args.value("tls");
    let h2 = args.flag("h2");
    args.finish()?;
    let connector = tls.map(|dir| tls::connector(dir.as_ref())).transpose()?;
    let connector = connector.as_ref();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let offer = deflate.then_some(DEFLATE_OFFER);
    runtime.block_on(async {
        let before = vm_rss_kib(pid).ok_or("cannot read the server's VmRSS")?;
        let results: Vec<_> = futures_util::stream::iter(0..connections)
            .map(|i| async move {
                let query = format!("name={}", name(i));
                if h2 {
                    return crate::h2::connect(addr, &query, offer).await;
                }
                connect_with(addr, &query, &mut Rng::new(i as u64), offer, connector).await
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let failed = results.iter().filter(|s| s.is_err()).count();
        if let Some(Err(error)) = results.iter().find(|s| s.is_err()) {
            eprintln!("{failed} connections failed, the first with: {error}");
        }
        let mut connected: Vec<Connected> = results.into_iter().flatten().collect();
        let mut report = json!({
            "connected": connections - failed,
            "failed": failed,
            "before_kib": before,
            "deflate_offered": deflate,
        });
        if deflate {
            exchange_all(&mut connected, message_bytes, &mut report).await;
        }
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let after = vm_rss_kib(pid).ok_or("cannot read the server's VmRSS")?;
        report["after_kib"] = json!(after);
        println!("RESULT {report}");
        drop(connected);
        Ok(())
    })
}

/// Every connection sends one binary message (compressed if deflate was
/// agreed) and waits for the echo; records what came back in `report`.
async fn exchange_all(connected: &mut [Connected], message_bytes: usize, report: &mut Value) {
    let message = chat_text(message_bytes);
    // One compressor per window the server allowed (they keep no context).
    let mut compressors: HashMap<u8, Compressor> = HashMap::new();
    let mut rng = Rng::new(connected.len() as u64);
    let frames: Vec<Vec<u8>> = connected
        .iter()
        .map(|conn| match &conn.deflate {
            Some(agreed) => compressors
                .entry(agreed.client_window)
                .or_insert_with(|| Compressor::new(agreed))
                .frame(OpCode::Binary, &message, &mut rng),
            None => {
                let mut frame = bytes::BytesMut::new();
                encode_frame(&mut frame, OpCode::Binary, &message, Some(rng.mask()));
                frame.to_vec()
            }
        })
        .collect();
    let echoes: Vec<Result<u8, String>> =
        futures_util::stream::iter(connected.iter_mut().zip(frames))
            .map(|(conn, frame)| exchange(conn, frame))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let failures: Vec<&String> = echoes.iter().filter_map(|e| e.as_ref().err()).collect();
    if let Some(first) = failures.first() {
        eprintln!(
            "{} exchanges failed, the first with: {first}",
            failures.len()
        );
    }
    let firsts: Vec<u8> = echoes
        .iter()
        .filter_map(|e| e.as_ref().ok().copied())
        .collect();
    let agreed: Vec<_> = connected.iter().filter_map(|c| c.deflate).collect();
    report["deflate_negotiated"] = json!(agreed.len());
    report["deflate"] = json!(agreed.first().map(|a| a.describe()));
    report["echoes"] = json!(firsts.len());
    report["echoes_compressed"] = json!(firsts.iter().filter(|&&f| f & RSV1 != 0).count());
    report["exchange_failures"] = json!(failures.len());
}

/// Sends `frame` and reads until one data frame comes back; returns its
/// first byte (FIN, RSV1, opcode).
async fn exchange(conn: &mut Connected, frame: Vec<u8>) -> Result<u8, String> {
    conn.stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    conn.stream
        .flush()
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let mut reader = FrameReader::default();
    let early = std::mem::take(&mut conn.early);
    let mut echo = first_data(&mut reader, &early);
    let mut buf = vec![0u8; 8192];
    let read_echo = async {
        loop {
            if let Some(first) = echo {
                return Ok(first);
            }
            match conn.stream.read(&mut buf).await {
                Ok(0) => return Err("closed before the echo".to_owned()),
                Ok(n) => echo = first_data(&mut reader, &buf[..n]),
                Err(e) => return Err(format!("reading: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_echo)
        .await
        .map_err(|_| "no echo within 30 s".to_owned())?
}

/// The first byte of the first data frame `bytes` completes, if any.
fn first_data(reader: &mut FrameReader, bytes: &[u8]) -> Option<u8> {
    let mut found = None;
    reader.feed(bytes, |first, _| {
        if first & 0x0f < 0x8 {
            found.get_or_insert(first);
        }
    });
    found
}

/// `bytes` of chat-like text: lines of the chat's messages.
fn chat_text(bytes: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(bytes + 64);
    for (i, msg) in MESSAGES.iter().cycle().enumerate() {
        if text.len() >= bytes {
            break;
        }
        text.extend_from_slice(format!("{}: {msg}\n", name(i % 40)).as_bytes());
    }
    text.truncate(bytes);
    text
}
