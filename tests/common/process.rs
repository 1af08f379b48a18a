//! The examples as users run them: their binaries, built with the test's
//! profile. (What `/proc` says about a process is `testkit::proc`.)

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// What `cargo test` puts in a test's environment about the package.
const PACKAGE_ENV: &[&str] = &[
    "CARGO_MANIFEST_",
    "CARGO_PKG_",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
];

/// The features this test was built with that the examples read: an
/// example built without them would refuse `--tls`, or serve no
/// `/metrics`.
const EXAMPLE_FEATURES: &[&str] = &[
    #[cfg(feature = "tls")]
    "tls",
    #[cfg(feature = "metrics")]
    "metrics",
    #[cfg(feature = "http2")]
    "http2",
];

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
    let mut cargo = Command::new(env!("CARGO"));
    // What `cargo test` sets for this package's tests would reach the build
    // scripts of the example's dependencies: ring's reruns when
    // CARGO_MANIFEST_DIR or CARGO_PKG_* change, so the next `cargo test`
    // (which has none of them) and this build would rebuild it in turn.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if PACKAGE_ENV.iter().any(|prefix| key.starts_with(prefix)) {
            cargo.env_remove(key);
        }
    }
    let status = cargo
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .args([
            "--features",
            &[features, EXAMPLE_FEATURES].concat().join(","),
        ])
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
