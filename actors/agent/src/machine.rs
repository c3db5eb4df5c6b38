//! What this machine has, as a kubelet reports it: cpus, memory, pods, ephemeral storage
//! (capacity; allocatable is capacity less what the node reserves), the kernel and the OS
//! image, and the node's pressure conditions from the free memory, disk and pids.

use std::path::Path;

use crate::config::Resources;

/// Bytes of `MemTotal` or `MemAvailable` in a `/proc/meminfo` text.
fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The cpus this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Total and available memory.
pub fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    (
        meminfo_bytes(&text, "MemTotal").unwrap_or(0),
        meminfo_bytes(&text, "MemAvailable").unwrap_or(0),
    )
}

/// Total and available bytes of the file system holding `dir`.
pub fn disk(dir: &Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            let f = s.fragment_size();
            (s.blocks() * f, s.blocks_available() * f)
        }
        Err(_) => (0, 0),
    }
}

/// The most pids and how many are in use.
pub fn pids() -> (u64, u64) {
    let max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let used = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    (max, used)
}

/// The node's capacity: this machine's cpus and memory, `pods` pods, the disk of `dir`.
pub fn capacity(dir: &Path, pods: u32) -> Resources {
    let mut r = Resources::new();
    r.insert("cpu".into(), cpus().to_string());
    r.insert("memory".into(), format!("{}Ki", memory().0 / 1024));
    r.insert("pods".into(), pods.to_string());
    let (disk, _) = disk(dir);
    if disk > 0 {
        r.insert("ephemeral-storage".into(), format!("{}Ki", disk / 1024));
    }
    r
}

/// The kernel's release (`uname -r`).
pub fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The OS's `PRETTY_NAME` from `/etc/os-release`.
pub fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// Whether the node is under memory, disk or pid pressure, by the kubelet's default hard
/// eviction thresholds (memory.available < 100Mi, nodefs.available < 10% (a flag here),
/// pids in use over 90% of the kernel's maximum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pids: bool,
}

/// The pressure read from the machine now (`dir` holds the pods' files; disk pressure
/// when less than `disk_percent` of its file system is available).
pub fn pressure(dir: &Path, disk_percent: u64) -> Pressure {
    let (_, mem_avail) = memory();
    let (disk_total, disk_avail) = disk(dir);
    let (pid_max, pids_used) = pids();
    Pressure {
        memory: mem_avail > 0 && mem_avail < 100 * 1024 * 1024,
        disk: disk_total > 0
            && disk_avail.saturating_mul(100) < disk_total.saturating_mul(disk_percent),
        pids: pids_used * 10 > pid_max * 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:       24604148 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(24604148 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(20000000 * 1024));
        assert_eq!(meminfo_bytes(text, "Nope"), None);
    }

    #[test]
    fn this_machine_has_cpus_memory_and_a_disk() {
        let c = capacity(Path::new("/"), 110);
        assert!(c["cpu"].parse::<usize>().unwrap() >= 1);
        assert!(c["memory"].ends_with("Ki"));
        assert_eq!(c["pods"], "110");
        assert!(c.contains_key("ephemeral-storage"));
        assert!(!kernel_version().is_empty());
    }
}
