//! cargo run --features client --example client -- URL [-H 'NAME: VALUE']...
//!
//! A command-line WebSocket client: connects to URL (`ws://` or, with the
//! `tls` feature, `wss://`), sends every line typed on stdin as a text
//! message, and prints every message that arrives. Ctrl-D closes with 1000.
//!
//! Against the chat example (`cargo run --example chat`), logged in as
//! "ada" through its cookie:
//!
//! ```text
//! cargo run --features client --example client -- ws://127.0.0.1:3000/ws -H 'cookie: user=ada'
//! ```

use futures_util::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use wshub::{Client, Compression, close_code};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: client URL [-H 'NAME: VALUE']...");
        std::process::exit(2);
    };
    let mut client = Client::new(&url).compression(Compression::SHARED);
    while let Some(arg) = args.next() {
        let header = match (arg.as_str(), args.next()) {
            ("-H", Some(header)) => header,
            _ => {
                eprintln!("unexpected argument {arg:?}; headers are -H 'NAME: VALUE'");
                std::process::exit(2);
            }
        };
        let Some((name, value)) = header.split_once(':') else {
            eprintln!("a header is 'NAME: VALUE', not {header:?}");
            std::process::exit(2);
        };
        client = client.header(name.trim(), value.trim());
    }
    let mut socket = match client.connect().await {
        Ok(socket) => socket,
        Err(error) => {
            eprintln!("could not connect to {url}: {error}");
            std::process::exit(1);
        }
    };
    eprintln!("connected to {url}; type lines to send them, Ctrl-D to close");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut typing = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if typing => match line {
                Ok(Some(line)) => {
                    socket.send(line);
                }
                _ => {
                    typing = false;
                    socket.close(close_code::NORMAL, "bye");
                }
            },
            msg = socket.next() => match msg {
                Some(msg) => match msg.as_text() {
                    Some(text) => println!("{text}"),
                    None => println!("({} bytes of binary)", msg.len()),
                },
                None => break,
            },
        }
    }
    if let Some(closed) = socket.closed() {
        eprintln!("closed: {} {}", closed.code, closed.reason);
        if let Some(error) = &closed.error {
            eprintln!("error: {error}");
        }
    }
}
