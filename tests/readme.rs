//! The README's first example is `examples/quickstart.rs`, word for word,
//! and runs as shown: a client that connects to it hears its own message
//! back through the room.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use common::process::example_binary;
use common::*;

/// The first ```` ```rust,no_run ```` block of the README (compiled with
/// the README's other blocks as doc tests, see `src/lib.rs`; run here).
fn readme_example() -> String {
    let readme = include_str!("../README.md");
    let fence = "```rust,no_run\n";
    let start = readme.find(fence).expect("a rust block in the README") + fence.len();
    let len = readme[start..].find("```\n").expect("the block's end");
    readme[start..start + len].to_owned()
}

#[test]
fn the_readme_example_is_examples_quickstart() {
    let example = include_str!("../examples/quickstart.rs");
    assert_eq!(
        readme_example(),
        example,
        "README.md's first rust block and examples/quickstart.rs differ: copy one to the other"
    );
}

#[tokio::test]
async fn the_readme_example_runs_as_shown() {
    within(std::time::Duration::from_secs(60), async {
        let binary = example_binary("quickstart");
        let mut process = Command::new(binary)
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut stdout = BufReader::new(process.stdout.take().expect("piped stdout"));
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).map(|_| (line, stdout))
        })
        .await
        .unwrap()
        .expect("read the example's stdout");
        let (line, _stdout) = line;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();

        let (mut client, _) = wait(
            "the handshake",
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .expect("connect to the example");
        send(&mut client, Msg::text("hello")).await;
        assert_eq!(recv(&mut client).await, Msg::text("ada: hello"));
        let _ = process.kill();
        let _ = process.wait();
    })
    .await;
}
