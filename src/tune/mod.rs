//! `tidemark tune`: compares the running Linux system with the settings in
//! `tuning/` (compiled into the binary, so the files stay the one source of
//! truth) and applies what it can. Runs on the CLI's main thread.
use std::path::{Path, PathBuf};

const SYSCTL_CONF: &str = include_str!("../../tuning/sysctl.conf");
const SYSTEM_CONF: &str = include_str!("../../tuning/system.conf");

/// Sysctls where a larger value than the file's is as good.
const AT_LEAST: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "fs.aio-max-nr",
];
/// Sysctls where a smaller value than the file's is as good.
const AT_MOST: &[&str] = &["vm.swappiness"];
/// Locked memory each shard needs for its io_uring buffers.
const MEMLOCK_PER_SHARD_BYTES: u64 = 512 * 1024;

/// How a setting is read and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file under /proc/sys or /sys holding the value itself.
    File(PathBuf),
    /// A /sys file listing choices with the active one in brackets.
    Choice(PathBuf),
    /// Not settable from here; only reported.
    ReportOnly,
}

/// One setting compared with what it should be.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub expected: String,
    /// `None` when the system does not have it (e.g. no cpufreq in a VM).
    pub actual: Option<String>,
    pub ok: bool,
    pub target: Target,
}

/// `key = value` lines, without comments and blanks.
fn parse_assignments(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), normalize(v)))
        .collect()
}

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| normalize(&s))
}

/// The bracketed choice of a /sys choice file: "a [b] c" -> "b".
fn active_choice(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

/// Whether `actual` satisfies `expected` for sysctl `key`.
fn sysctl_ok(key: &str, expected: &str, actual: &str) -> bool {
    let numbers = |s: &str| s.parse::<i64>().ok();
    match (numbers(expected), numbers(actual)) {
        (Some(e), Some(a)) if AT_LEAST.contains(&key) => a >= e,
        (Some(e), Some(a)) if AT_MOST.contains(&key) => a <= e,
        _ => expected == actual,
    }
}

fn sysctl_checks() -> Vec<Check> {
    parse_assignments(SYSCTL_CONF)
        .into_iter()
        .map(|(key, expected)| {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            let actual = read(&path);
            let ok = actual
                .as_deref()
                .is_some_and(|a| sysctl_ok(&key, &expected, a));
            Check {
                name: key,
                expected,
                actual,
                ok,
                target: Target::File(path),
            }
        })
        .collect()
}

fn system_checks() -> Vec<Check> {
    parse_assignments(SYSTEM_CONF)
        .into_iter()
        .map(|(path, expected)| {
            let path = PathBuf::from(path);
            let want = active_choice(&expected).unwrap_or(expected.clone());
            let actual = read(&path).and_then(|t| active_choice(&t).or(Some(t)));
            Check {
                name: path.display().to_string(),
                ok: actual.as_deref() == Some(want.as_str()),
                expected: want,
                actual,
                target: Target::Choice(path),
            }
        })
        .collect()
}

/// The whole-disk name under /sys/block that holds `dir` (vda for vda1).
fn block_device_of(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = if link.join("partition").exists() {
        link.parent()?.file_name()?
    } else {
        link.file_name()?
    };
    Some(name.to_string_lossy().into_owned())
}

fn scheduler_check(data_dir: &Path) -> Check {
    let device = block_device_of(data_dir);
    let expected = match device.as_deref() {
        Some(d) if d.starts_with("nvme") => "none",
        _ => "mq-deadline",
    };
    let path = device
        .as_ref()
        .map(|d| PathBuf::from(format!("/sys/block/{d}/queue/scheduler")));
    let actual = path
        .as_deref()
        .and_then(read)
        .and_then(|t| active_choice(&t));
    Check {
        name: format!(
            "I/O scheduler of {}",
            device.as_deref().unwrap_or("the data disk")
        ),
        ok: actual.as_deref() == Some(expected),
        expected: expected.to_string(),
        actual,
        target: path.map(Target::Choice).unwrap_or(Target::ReportOnly),
    }
}

fn governor_checks() -> Vec<Check> {
    let cpus = std::fs::read_dir("/sys/devices/system/cpu")
        .into_iter()
        .flatten()
        .flatten();
    let mut checks: Vec<Check> = cpus
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("cpu") && name[3..].parse::<u32>().is_ok()
        })
        .filter_map(|e| {
            let path = e.path().join("cpufreq/scaling_governor");
            let actual = read(&path)?;
            Some(Check {
                name: format!("CPU governor of {}", e.file_name().to_string_lossy()),
                ok: actual == "performance",
                expected: "performance".into(),
                actual: Some(actual),
                target: Target::File(path),
            })
        })
        .collect();
    if checks.is_empty() {
        checks.push(Check {
            name: "CPU governor".into(),
            expected: "performance".into(),
            actual: None,
            // Without cpufreq (most VMs) the hypervisor decides: nothing to do.
            ok: true,
            target: Target::ReportOnly,
        });
    }
    checks.sort_by(|a, b| a.name.cmp(&b.name));
    checks
}

fn memlock_check(shards: usize) -> Check {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    let needed = MEMLOCK_PER_SHARD_BYTES * shards.max(1) as u64;
    let describe = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            format!("{} KiB", v / 1024)
        }
    };
    Check {
        name: "locked memory (hard limit; see tuning/limits.conf)".into(),
        expected: format!("at least {} KiB", needed / 1024),
        actual: got.then(|| describe(limit.rlim_max)),
        ok: got && (limit.rlim_max == libc::RLIM_INFINITY || limit.rlim_max >= needed),
        target: Target::ReportOnly,
    }
}

fn irqbalance_check() -> Check {
    let running = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .any(|comm| comm.trim() == "irqbalance");
    Check {
        name: "irqbalance (spreads NIC and disk interrupts over cores)".into(),
        expected: "running".into(),
        actual: Some(if running { "running" } else { "not running" }.into()),
        ok: running,
        target: Target::ReportOnly,
    }
}

/// Every check, for a broker with `shards` shards keeping data in `data_dir`.
pub fn check_all(data_dir: &Path, shards: usize) -> Vec<Check> {
    let mut checks = sysctl_checks();
    checks.extend(system_checks());
    checks.push(scheduler_check(data_dir));
    checks.extend(governor_checks());
    checks.push(memlock_check(shards));
    checks.push(irqbalance_check());
    checks
}

/// Sets one failed check to its expected value. `Err` says why not.
pub fn apply(check: &Check) -> Result<(), String> {
    match &check.target {
        Target::File(path) | Target::Choice(path) => std::fs::write(path, &check.expected)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        Target::ReportOnly => Err("not settable by tidemark tune: see docs/tuning.md".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_files_parse() {
        let sysctls = parse_assignments(SYSCTL_CONF);
        assert!(sysctls
            .iter()
            .any(|(k, v)| k == "net.core.somaxconn" && v == "4096"));
        assert!(sysctls
            .iter()
            .any(|(k, v)| k == "net.ipv4.tcp_rmem" && v == "4096 1048576 16777216"));
        assert_eq!(
            active_choice(&parse_assignments(SYSTEM_CONF)[0].1).as_deref(),
            Some("madvise")
        );
    }

    #[test]
    fn comparisons_follow_the_direction_of_each_setting() {
        assert!(sysctl_ok("net.core.somaxconn", "4096", "65535"));
        assert!(!sysctl_ok("net.core.somaxconn", "4096", "128"));
        assert!(sysctl_ok("vm.swappiness", "1", "0"));
        assert!(!sysctl_ok("vm.swappiness", "1", "60"));
        assert!(sysctl_ok(
            "net.ipv4.tcp_rmem",
            "4096 1048576 16777216",
            "4096 1048576 16777216"
        ));
        assert!(!sysctl_ok("kernel.io_uring_disabled", "0", "2"));
        assert_eq!(
            active_choice("none [mq-deadline] kyber").as_deref(),
            Some("mq-deadline")
        );
    }

    #[test]
    fn checks_run_on_this_machine() {
        let checks = check_all(Path::new("/"), 2);
        assert!(checks
            .iter()
            .any(|c| c.name == "net.core.somaxconn" && c.actual.is_some()));
        assert!(checks.iter().any(|c| c.name.starts_with("I/O scheduler")));
    }
}
