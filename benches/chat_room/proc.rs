//! What `/proc` tells about a process: CPU time, resident memory, limits.

use std::process::Command;
use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// User and system CPU seconds of a whole process (all its threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

/// `pid` of `None` is this process.
pub fn cpu_time(pid: Option<u32>) -> Option<CpuTime> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); field 3 is fields[0] here.
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    Some(CpuTime {
        user: ticks(14)? / TICKS_PER_SEC,
        system: ticks(15)? / TICKS_PER_SEC,
    })
}

/// The share of one core a process used between two readings.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: Option<u32>,
    start: Instant,
    cpu: CpuTime,
}

/// CPU use over a span of wall time, in percent of one core.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub user: f64,
    pub system: f64,
}

impl CpuUse {
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Option<Self> {
        Some(Self {
            pid,
            start: Instant::now(),
            cpu: cpu_time(pid)?,
        })
    }

    pub fn read(&self) -> Option<CpuUse> {
        let now = cpu_time(self.pid)?;
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        Some(CpuUse {
            user: 100.0 * (now.user - self.cpu.user) / wall,
            system: 100.0 * (now.system - self.cpu.system) / wall,
        })
    }
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raises this process's open-file limit to `want` (children inherit it)
/// with util-linux `prlimit`, or as far as the hard limit allows; tens of
/// thousands of sockets need more than the usual 1,024.
pub fn raise_nofile(want: u64) {
    let Some((soft, hard)) = nofile() else {
        return;
    };
    if soft >= want {
        return;
    }
    let pid = std::process::id().to_string();
    for limit in [want, hard.min(want)] {
        let arg = format!("--nofile={limit}:{}", limit.max(hard));
        let raised = Command::new("prlimit")
            .args(["--pid", &pid, &arg])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if raised {
            break;
        }
    }
    let now = nofile().map_or(soft, |(soft, _)| soft);
    if now < want {
        eprintln!("note: open-file limit {now} (hard limit {hard}), wanted {want}");
    }
}

/// The soft and hard open-file limits of this process.
fn nofile() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.split_whitespace().skip(3);
    let mut next = || fields.next()?.parse().ok();
    Some((next()?, next()?))
}
