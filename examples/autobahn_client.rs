//! cargo run --release --features client --example autobahn_client -- URL [AGENT] [COMPRESSION]
//!
//! Runs every case of an Autobahn|Testsuite fuzzing server at URL (for
//! example ws://127.0.0.1:9002) with the wshub client, then asks it to write
//! its reports: `getCaseCount`, `runCase` for each case, `updateReports`.
//! Each case's connection echoes every message back, text as text, binary as
//! binary. COMPRESSION is the `permessage-deflate` offer: `dedicated` (the
//! default: a compressor per socket keeping its context, both ways),
//! `shared`, or `off`. `scripts/autobahn.sh` runs it.

use std::time::Duration;

use futures_util::StreamExt as _;
use wshub::{Client, Compression, Compressor, Config, Handler, Message, WebSocket};

/// Echoes every message; tells `done` when the case's connection ends.
struct Echo;

impl Handler for Echo {
    type Data = tokio::sync::mpsc::UnboundedSender<()>;

    async fn message(&self, ws: &WebSocket<Self::Data>, msg: Message) {
        ws.send(msg);
    }

    async fn close(&self, ws: &WebSocket<Self::Data>, _code: u16, _reason: &str) {
        let _ = ws.data().send(());
    }
}

fn compression(name: &str) -> Option<Compression> {
    Some(match name {
        "off" => Compression::DISABLED,
        "shared" => Compression::SHARED,
        "dedicated" => Compression {
            compress: Compressor::Dedicated,
            decompress: Compressor::Dedicated,
        },
        _ => return None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: autobahn_client URL [AGENT] [off|shared|dedicated]");
        std::process::exit(2);
    };
    let url = url.trim_end_matches('/').to_owned();
    let agent = args.next().unwrap_or_else(|| "wshub".to_owned());
    let mode = args.next().unwrap_or_else(|| "dedicated".to_owned());
    let Some(compression) = compression(&mode) else {
        eprintln!("unknown compression {mode:?}: off, shared or dedicated");
        std::process::exit(2);
    };
    // Group 9 sends messages of 16 MiB; leave room for them.
    let config = Config::default()
        .max_payload_length(64 << 20)
        .compression(compression)
        .close_timeout(Duration::from_secs(10));

    let mut count = Client::new(format!("{url}/getCaseCount")).connect().await?;
    let cases: u32 = match count.next().await {
        Some(msg) => msg.as_text().unwrap_or_default().trim().parse()?,
        None => return Err("getCaseCount sent nothing".into()),
    };
    drop(count);
    println!("{cases} cases, agent {agent}, compression {mode}");

    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    for case in 1..=cases {
        let client =
            Client::new(format!("{url}/runCase?case={case}&agent={agent}")).config(config.clone());
        match client.connect_with(Echo, done_tx.clone()).await {
            Ok(_ws) => {
                // Bounded: a case that hangs must not stop the run.
                if tokio::time::timeout(Duration::from_secs(120), done.recv())
                    .await
                    .is_err()
                {
                    eprintln!("case {case}: no close after 120 s");
                }
            }
            Err(error) => eprintln!("case {case}: {error}"),
        }
        if case % 50 == 0 {
            println!("{case} / {cases}");
        }
    }

    let mut update = Client::new(format!("{url}/updateReports?agent={agent}"))
        .connect()
        .await?;
    while update.next().await.is_some() {}
    println!("reports updated");
    Ok(())
}
