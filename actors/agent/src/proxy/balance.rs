//! Which endpoint a new connection goes to (pure, the clock passed in): round-robin over the
//! current targets, or, with ClientIP session affinity, the client's previous endpoint while
//! it is still a target and the client came back within the timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// One ingress's choice of endpoints.
#[derive(Debug, Default)]
pub struct Balancer {
    next: usize,
    sticky: HashMap<IpAddr, (SocketAddrV4, Instant)>,
}

impl Balancer {
    /// The endpoint for a connection from `client`, among `targets` leaving out `skip`
    /// (endpoints that just refused it); `None` when nothing is left.
    pub fn pick(
        &mut self,
        client: IpAddr,
        targets: &[SocketAddrV4],
        skip: &[SocketAddrV4],
        affinity: Option<Duration>,
        now: Instant,
    ) -> Option<SocketAddrV4> {
        let usable: Vec<SocketAddrV4> = targets
            .iter()
            .copied()
            .filter(|t| !skip.contains(t))
            .collect();
        if usable.is_empty() {
            return None;
        }
        if let Some(timeout) = affinity {
            self.sticky
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < timeout);
            if let Some((addr, at)) = self.sticky.get_mut(&client) {
                if usable.contains(addr) {
                    *at = now;
                    return Some(*addr);
                }
            }
        }
        let chosen = usable[self.next % usable.len()];
        self.next = self.next.wrapping_add(1);
        if affinity.is_some() {
            self.sticky.insert(client, (chosen, now));
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn round_robin_spreads_evenly_and_skips_refusers() {
        let targets = [a("10.42.0.1:80"), a("10.42.0.2:80"), a("10.42.0.3:80")];
        let mut b = Balancer::default();
        let now = Instant::now();
        let client: IpAddr = "10.42.0.9".parse().unwrap();
        let mut counts = HashMap::new();
        for _ in 0..300 {
            let t = b.pick(client, &targets, &[], None, now).unwrap();
            *counts.entry(t).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&n| n == 100), "{counts:?}");
        let t = b.pick(client, &targets, &targets[..2], None, now);
        assert_eq!(t, Some(targets[2]));
        assert_eq!(b.pick(client, &targets, &targets, None, now), None);
        assert_eq!(b.pick(client, &[], &[], None, now), None);
    }

    #[test]
    fn affinity_sticks_until_the_timeout_or_the_endpoint_goes() {
        let targets = [a("10.42.0.1:80"), a("10.42.0.2:80")];
        let mut b = Balancer::default();
        let t0 = Instant::now();
        let timeout = Some(Duration::from_secs(10));
        let one: IpAddr = "10.42.0.8".parse().unwrap();
        let two: IpAddr = "10.42.0.9".parse().unwrap();
        let first = b.pick(one, &targets, &[], timeout, t0).unwrap();
        for i in 1..5 {
            let at = t0 + Duration::from_secs(i * 5);
            assert_eq!(b.pick(one, &targets, &[], timeout, at), Some(first));
        }
        // Another client gets the other endpoint.
        let other = b.pick(two, &targets, &[], timeout, t0).unwrap();
        assert_ne!(other, first);
        // Silent past the timeout: round-robin again.
        let late = t0 + Duration::from_secs(100);
        let after = b.pick(one, &targets, &[], timeout, late).unwrap();
        assert_eq!(b.pick(one, &targets, &[], timeout, late), Some(after));
        // Its endpoint gone: moved to a live one, and sticks there.
        let left: Vec<SocketAddrV4> = targets.iter().copied().filter(|t| *t != after).collect();
        let moved = b.pick(one, &left, &[], timeout, late).unwrap();
        assert_ne!(moved, after);
        assert_eq!(b.pick(one, &targets, &[], timeout, late), Some(moved));
    }
}
