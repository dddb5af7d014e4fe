//! CPU time and memory of processes, read from Linux's `/proc` and `getrusage`, so a run can
//! say which side was busy: a server at 100% of its core and a generator below it means the
//! figure is the server's.

use std::time::Duration;

/// CPU time this process has used so far.
///
/// ```
/// use switchboard_loadgen::procstat::own_cpu_time;
///
/// let before = own_cpu_time();
/// let _sum: u64 = (0..1_000_000u64).sum();
/// let used = own_cpu_time().since(before);
/// println!("{:?} user, {:?} kernel", used.user, used.system);
/// ```
pub fn own_cpu_time() -> CpuTime {
    // SAFETY: `getrusage` only writes the struct we pass, which is zero-initialised.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    CpuTime {
        user: tv(usage.ru_utime),
        system: tv(usage.ru_stime),
    }
}

/// CPU time split by where it was spent.
///
/// ```
/// use std::time::Duration;
/// use switchboard_loadgen::procstat::CpuTime;
///
/// let start = CpuTime { user: Duration::from_millis(100), system: Duration::from_millis(50) };
/// let end = CpuTime { user: Duration::from_millis(400), system: Duration::from_millis(150) };
/// let used = end.since(start);
/// assert_eq!(used.user, Duration::from_millis(300));
/// assert_eq!(used.total(), Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// In the process's own code (and its libraries).
    pub user: Duration,
    /// In the kernel on the process's behalf: for an echo, mostly the TCP stack.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used between `earlier` and `self`.
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// CPU time (all threads) process `pid` has used so far, from `/proc/PID/stat`; `None` if
/// the process is gone. Resolution is one clock tick (10 ms).
///
/// ```
/// use switchboard_loadgen::procstat::process_cpu_time;
///
/// let cpu = process_cpu_time(std::process::id()).expect("this process is running");
/// println!("{:?} of CPU so far", cpu.total());
/// ```
pub fn process_cpu_time(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are fixed.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split(' ');
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: `sysconf` has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks_to_time = |t: u64| Duration::from_nanos(t * 1_000_000_000 / ticks);
    Some(CpuTime {
        user: ticks_to_time(utime),
        system: ticks_to_time(stime),
    })
}

/// Time process `pid` has been on a CPU so far, summed over its threads, in nanoseconds
/// from `/proc/PID/task/*/schedstat`: exact where [`process_cpu_time`] counts 10 ms ticks.
/// `None` if the process is gone. Threads that already exited are not counted.
///
/// ```
/// use switchboard_loadgen::procstat::process_run_time;
///
/// let pid = std::process::id();
/// let before = process_run_time(pid).expect("this process is running");
/// let _sum: u64 = (0..1_000_000u64).sum();
/// assert!(process_run_time(pid).unwrap() >= before);
/// ```
pub fn process_run_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += stat
            .split(' ')
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(total))
}

/// Resident set size of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
///
/// ```
/// use switchboard_loadgen::procstat::rss_kib;
///
/// let kib = rss_kib(std::process::id()).expect("this process is running");
/// assert!(kib > 0);
/// ```
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_visible_both_ways() {
        let pid = std::process::id();
        // Burn a little CPU so both clocks move past zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(own_cpu_time().user > Duration::ZERO);
        assert!(process_cpu_time(pid).is_some());
        assert!(process_run_time(pid).unwrap() > Duration::ZERO);
        assert!(rss_kib(pid).unwrap() > 0);
    }

    #[test]
    fn missing_process_is_none() {
        assert_eq!(process_cpu_time(u32::MAX), None);
        assert_eq!(process_run_time(u32::MAX), None);
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
