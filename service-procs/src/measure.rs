//! What a platform can tell about a running process: its resident memory
//! and its open descriptors, read from Linux's `/proc`. Elsewhere (macOS,
//! Windows, or no `/proc` mounted) each is `None`, never `0`: a caller then
//! says it could not measure, rather than compare `0 <= bound` and pass.

/// Resident memory of process `pid` in KiB, from `/proc/PID/status`;
/// `None` where that cannot be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Open file descriptors of process `pid`, from `/proc/PID/fd`; `None`
/// where that cannot be read (see [`rss_kib`]).
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process has a size and descriptors on Linux; elsewhere `None`.
    #[test]
    fn measures_this_process_where_it_can() {
        let me = std::process::id();
        if cfg!(target_os = "linux") {
            assert!(rss_kib(me).is_some_and(|k| k > 0));
            assert!(open_fds(me).is_some_and(|n| n > 0));
        }
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
