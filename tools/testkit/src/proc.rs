//! What `/proc` tells about a process: CPU time, memory, page faults.
//!
//! Every function takes a pid; `std::process::id()` is this process.

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// A number from `/proc/<pid>/status`, such as `VmRSS` or `VmHWM` (memory
/// fields are in KiB).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory in KiB (`VmRSS`).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// `/proc/<pid>/stat`: the fields after the command name, which may hold
/// spaces and is therefore skipped up to its `)`.
struct Stat(String);

impl Stat {
    fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Self(stat.rsplit_once(')')?.1.to_owned()))
    }

    /// Field `n` as stat(5) numbers them (from 1; the first after the
    /// command name is 3), as a number.
    fn field(&self, n: usize) -> Option<u64> {
        self.0
            .split_whitespace()
            .nth(n.checked_sub(3)?)?
            .parse()
            .ok()
    }
}

/// Minor page faults of a whole process so far (`minflt`, field 10):
/// memory the allocator gave back and touches again.
pub fn minor_faults(pid: u32) -> Option<u64> {
    Stat::read(pid)?.field(10)
}

/// User and system CPU seconds of a whole process (all its threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// Seconds in user mode (`utime`, field 14).
    pub user: f64,
    /// Seconds in the kernel (`stime`, field 15).
    pub system: f64,
}

/// The CPU time `pid` used so far.
pub fn cpu_time(pid: u32) -> Option<CpuTime> {
    let stat = Stat::read(pid)?;
    let seconds = |n| Some(stat.field(n)? as f64 / TICKS_PER_SEC);
    Some(CpuTime {
        user: seconds(14)?,
        system: seconds(15)?,
    })
}

/// Context switches of a whole process so far: each thread's voluntary
/// ones (it blocked: parked, waited in `epoll_wait`) and involuntary ones
/// (the kernel preempted it), added over `/proc/<pid>/task/*/status`.
/// Threads that ended are not counted.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            // The thread ended since the listing.
            continue;
        };
        for line in status.lines() {
            let count = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"));
            if let Some(count) = count.and_then(|c| c.trim().parse::<u64>().ok()) {
                total += count;
            }
        }
    }
    Some(total)
}

/// Nanoseconds the calling thread has run on a CPU so far, user and kernel
/// together (`/proc/thread-self/schedstat`, first field): precise where the
/// clock ticks of `stat` are 10 ms.
pub fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU time used so far by the threads of this process named `name`
/// (as `/proc/self/task/*/comm` shows it, at most 15 bytes).
pub fn threads_cpu_time(name: &str) -> CpuTime {
    let mut total = CpuTime::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let Some(stat) = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|stat| Some(Stat(stat.rsplit_once(')')?.1.to_owned())))
        else {
            continue;
        };
        let seconds = |n| stat.field(n).map_or(0.0, |t| t as f64 / TICKS_PER_SEC);
        total.user += seconds(14);
        total.system += seconds(15);
    }
    total
}

/// Measures the share of a core a process uses from now on.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    start: Instant,
    cpu: CpuTime,
}

/// CPU use over a span of wall time, in percent of one core (a process
/// busy on 2 cores uses 200%).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// Percent of a core in user mode.
    pub user: f64,
    /// Percent of a core in the kernel.
    pub system: f64,
}

impl CpuUse {
    /// User and system together.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

impl CpuMeter {
    /// Starts measuring `pid`; `None` if it cannot be read.
    pub fn start(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            start: Instant::now(),
            cpu: cpu_time(pid)?,
        })
    }

    /// The CPU use since [`start`](Self::start).
    pub fn read(&self) -> Option<CpuUse> {
        let now = cpu_time(self.pid)?;
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        Some(CpuUse {
            user: 100.0 * (now.user - self.cpu.user) / wall,
            system: 100.0 * (now.system - self.cpu.system) / wall,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_read() {
        let pid = std::process::id();
        assert!(vm_rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(status_kib(pid, "VmHWM").is_some());
        assert!(status_kib(pid, "NoSuchField").is_none());
        assert!(minor_faults(pid).is_some_and(|faults| faults > 0));
        let meter = CpuMeter::start(pid).unwrap();
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 50 {
            std::hint::black_box(spin.elapsed());
        }
        assert!(meter.read().unwrap().total() >= 0.0);
        let before = context_switches(pid).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(
            context_switches(pid).unwrap() > before,
            "a sleep blocks the thread: one voluntary switch at least"
        );
        assert!(context_switches(u32::MAX).is_none());
    }
}
