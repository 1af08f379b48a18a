//! The open-file limit: tens of thousands of sockets need more than the
//! usual 1,024 descriptors.

use std::process::{Command, Stdio};

/// Raises this process's open-file limit (children inherit it) so that at
/// least `want` descriptors may be open; gives the soft limit now.
///
/// The soft limit goes to the hard limit when that is enough: every caller
/// sets the same value, so tests running in parallel in one process never
/// lower each other's. Else both limits go to `want`, which needs the
/// privilege to raise a hard limit; without it, the soft limit still goes
/// as far as the hard one. Uses util-linux `prlimit`. Fails, saying why,
/// when the limit stays below `want`.
pub fn raise_nofile(want: u64) -> Result<u64, String> {
    let (soft, hard) = nofile().ok_or("cannot read the open-file limit in /proc/self/limits")?;
    if soft >= want {
        return Ok(soft);
    }
    let pid = std::process::id().to_string();
    for limit in [hard.max(want), hard] {
        Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={limit}:{limit}")])
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run prlimit (util-linux): {e}"))?;
        match nofile() {
            Some((soft, _)) if soft >= want => return Ok(soft),
            _ if limit == hard => break,
            _ => {}
        }
    }
    let (soft, hard) = nofile().unwrap_or((soft, hard));
    Err(format!(
        "the open-file limit is {soft} (hard limit {hard}); {want} are wanted, and raising \
         the hard limit needs privileges"
    ))
}

/// The soft and hard open-file limits of this process.
fn nofile() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.split_whitespace().skip(3);
    let mut next = || fields.next()?.parse().ok();
    Some((next()?, next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_already_reached_is_left_alone() {
        let (soft, hard) = nofile().unwrap();
        assert!(soft <= hard);
        assert_eq!(raise_nofile(soft.min(64)), Ok(soft));
        assert_eq!(nofile(), Some((soft, hard)));
    }
}
