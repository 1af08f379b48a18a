//! The examples as users run them: their binaries, built with the test's
//! profile. (What `/proc` says about a process is `testkit::proc`.)

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// An example's binary, built (once per test process and example) with the
/// profile of this test, so a test never runs a stale example.
///
/// `cargo test` builds examples too, but `cargo test --test NAME` does not.
pub fn example_binary(name: &'static str) -> &'static PathBuf {
    example_binary_with(name, &[])
}

/// [`example_binary`] for an example that needs cargo `features`.
pub fn example_binary_with(name: &'static str, features: &[&str]) -> &'static PathBuf {
    static BINARIES: OnceLock<std::sync::Mutex<Vec<(&'static str, &'static PathBuf)>>> =
        OnceLock::new();
    let mut built = BINARIES.get_or_init(Default::default).lock().unwrap();
    if let Some((_, binary)) = built.iter().find(|(n, _)| *n == name) {
        return binary;
    }
    // This test is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary in target/<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|dir| dir.to_str()) {
        Some("debug") | None => "dev",
        Some(profile) => profile,
    };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .args(["--features", &features.join(",")])
        .args(["--manifest-path", manifest])
        .status()
        .expect("run cargo");
    assert!(status.success(), "`cargo build --example {name}` failed");
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing after `cargo build --example {name}`",
        binary.display()
    );
    let binary: &'static PathBuf = Box::leak(Box::new(binary));
    built.push((name, binary));
    binary
}
