//! Who may connect: the broker-wide count of client connections
//! (`max.connections`), the count per IP address (`max.connections.per.ip`)
//! and the file descriptors kept free for the logs (`log.fd.reserve`).
//!
//! One `ConnectionTracker` is shared by every shard's accept loop (atomics
//! and a mutex touched once per accept and once per close, never on the data
//! path). A connection over a limit is closed right after `accept`, as
//! Apache Kafka closes a connection over `max.connections.per.ip`.
use crate::config::ConnectionSettings;
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// Why an accepted connection is closed at once.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{limit} connections are open (max.connections)")]
    TooMany { limit: usize },
    #[error("{limit} connections from {ip} are open (max.connections.per.ip)")]
    TooManyFromIp { ip: IpAddr, limit: usize },
    #[error("descriptor {fd} is within the {reserve} kept for the logs (RLIMIT_NOFILE {limit})")]
    FdReserve { fd: RawFd, reserve: u64, limit: u64 },
}

/// The connections open on this broker, on every shard.
#[derive(Debug)]
pub struct ConnectionTracker {
    settings: ConnectionSettings,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionTracker {
    pub fn new(settings: ConnectionSettings) -> Arc<ConnectionTracker> {
        Arc::new(ConnectionTracker {
            settings,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip` that `accept` put on descriptor `fd`, or
    /// says which limit it is over. The permit counts it until dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, fd: RawFd) -> Result<ConnectionPermit, Refusal> {
        check_fd_reserve(fd, self.settings.fd_reserve, nofile_limit())?;
        let limit = self.settings.max_connections;
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        if admitted.is_err() {
            return Err(Refusal::TooMany { limit });
        }
        // Counted from here: dropped on a refusal below, it uncounts itself.
        let mut permit = ConnectionPermit {
            tracker: self.clone(),
            ip: None,
        };
        let per_ip_limit = self.settings.max_connections_per_ip;
        let mut per_ip = self.per_ip();
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= per_ip_limit {
            return Err(Refusal::TooManyFromIp {
                ip,
                limit: per_ip_limit,
            });
        }
        *count += 1;
        permit.ip = Some(ip);
        Ok(permit)
    }

    fn per_ip(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, ip: Option<IpAddr>) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        let Some(ip) = ip else { return };
        let mut per_ip = self.per_ip();
        if let Some(count) = per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// One admitted connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    tracker: Arc<ConnectionTracker>,
    ip: Option<IpAddr>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.tracker.release(self.ip.take());
    }
}

/// `accept` returns the lowest free descriptor, so a connection on one of
/// the last `reserve` descriptors below the limit means fewer than that many
/// are free: it is refused, and connections can never take the descriptors
/// that segment rolls and checkpoints need. The reserve is at most a quarter
/// of the limit, so a low limit still leaves room for clients.
fn check_fd_reserve(fd: RawFd, reserve: usize, limit: u64) -> Result<(), Refusal> {
    let reserve = (reserve as u64).min(limit / 4);
    if fd >= 0 && (fd as u64).saturating_add(reserve) >= limit {
        return Err(Refusal::FdReserve { fd, reserve, limit });
    }
    Ok(())
}

/// The soft RLIMIT_NOFILE now (it may change while the broker runs).
fn nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return u64::MAX;
    }
    limit.rlim_cur
}

/// Raises the soft RLIMIT_NOFILE to the hard one at start-up, so that a
/// shell's default of 1024 does not limit a broker that may have more.
pub fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: usize, per_ip: usize) -> ConnectionSettings {
        ConnectionSettings {
            max_connections: max,
            max_connections_per_ip: per_ip,
            idle_ms: 600_000,
            frame_timeout_ms: 30_000,
            fd_reserve: 0,
            connection_inflight_max_bytes: 64 << 20,
            shard_inflight_max_bytes: 256 << 20,
        }
    }

    #[test]
    fn per_ip_and_broker_limits_count_open_connections() {
        let tracker = ConnectionTracker::new(settings(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = tracker.admit(a, 10).unwrap();
        let _second = tracker.admit(a, 11).unwrap();
        assert_eq!(
            tracker.admit(a, 12).unwrap_err(),
            Refusal::TooManyFromIp { ip: a, limit: 2 }
        );
        assert_eq!(tracker.open(), 2, "a refused connection is not counted");
        let _third = tracker.admit(b, 12).unwrap();
        assert_eq!(
            tracker.admit(b, 13).unwrap_err(),
            Refusal::TooMany { limit: 3 }
        );
        drop(first);
        assert!(tracker.admit(a, 10).is_ok(), "a closed one frees its place");
    }

    #[test]
    fn the_last_descriptors_are_kept_for_the_logs() {
        assert!(check_fd_reserve(10, 64, 1024).is_ok());
        assert!(check_fd_reserve(959, 64, 1024).is_ok());
        assert!(check_fd_reserve(960, 64, 1024).is_err());
        // A low limit keeps at most a quarter.
        assert!(check_fd_reserve(40, 1024, 100).is_ok());
        assert!(check_fd_reserve(75, 1024, 100).is_err());
    }
}
