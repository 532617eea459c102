//! The other end of a connection when both ends are on this host (loopback, network namespaces,
//! containers): the kernel reports both sockets, and the other end's 4-tuple is this one's
//! mirror. Alerts name the process there; `top` and `report` show the two ends together.
//!
//! Sockets in different network namespaces may use the same addresses (127.0.0.1 in each):
//! events carry no namespace, so two such connections with mirrored 4-tuples at the same
//! moment would be joined wrongly. Ports make that rare; the join says "on this host", never
//! which namespace.

use std::collections::HashMap;
use std::net::IpAddr;

use super::conn::{Conn, FourTuple};
use super::table::{ConnKey, ConnTable};

impl FourTuple {
    /// The same connection as its other end sees it.
    pub fn mirror(&self) -> FourTuple {
        FourTuple { saddr: self.daddr, sport: self.dport, daddr: self.saddr, dport: self.sport }
    }

    /// The peer is on this host for certain, whether or not its socket was seen: a loopback
    /// address, or this end's own address. Other local addresses (a veth into a container)
    /// are known only by the join.
    pub fn peer_surely_local(&self) -> bool {
        is_loopback(&self.daddr) || self.daddr == self.saddr
    }
}

/// Loopback, including an IPv4 loopback address mapped into IPv6.
fn is_loopback(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

impl ConnTable {
    /// The live connection at the other end of the connection on `tuple`: the socket of this
    /// host whose 4-tuple is the mirror of it. None when the other end is remote, or local but
    /// not reported (a quiet connection: see tracer-ebpf's report.rs).
    pub fn peer_of(&self, tuple: &FourTuple) -> Option<(ConnKey, &Conn)> {
        let key = self.live_on(&tuple.mirror())?;
        self.get(&key).map(|c| (key, c))
    }
}

/// Reorders `items` so that the two ends of a connection on this host sit side by side: each
/// item whose mirror 4-tuple (`tuple` of it) is among the items pulls that one up behind it.
/// Everything else keeps its order, so a list sorted worst first stays worst first by its
/// worse end. Returns, for each position after the reordering, the position of its other end.
/// Several items on the same 4-tuple (a reused one) pair first with first.
pub fn pair_ends<T>(items: &mut Vec<T>, tuple: impl Fn(&T) -> FourTuple) -> Vec<Option<usize>> {
    let mut by_tuple: HashMap<FourTuple, Vec<usize>> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        by_tuple.entry(tuple(item)).or_default().push(i);
    }
    // Each index's partner, taking candidates in order.
    let mut partner: Vec<Option<usize>> = vec![None; items.len()];
    for i in 0..items.len() {
        if partner[i].is_some() {
            continue;
        }
        let mirror = tuple(&items[i]).mirror();
        let Some(candidates) = by_tuple.get_mut(&mirror) else { continue };
        // A connection to itself (simultaneous open on one port) is its own mirror: not a pair.
        if let Some(pos) = candidates.iter().position(|&j| j != i && partner[j].is_none()) {
            let j = candidates.remove(pos);
            partner[i] = Some(j);
            partner[j] = Some(i);
        }
    }
    let mut order = Vec::with_capacity(items.len());
    let mut placed = vec![false; items.len()];
    for i in 0..items.len() {
        if placed[i] {
            continue;
        }
        placed[i] = true;
        order.push(i);
        if let Some(j) = partner[i] {
            placed[j] = true;
            order.push(j);
        }
    }
    let mut new_pos = vec![0; items.len()];
    for (pos, &old) in order.iter().enumerate() {
        new_pos[old] = pos;
    }
    let pairs = order.iter().map(|&old| partner[old].map(|p| new_pos[p])).collect();
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.iter().filter_map(|&old| slots[old].take()));
    pairs
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn t(sport: u16, dport: u16) -> FourTuple {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        FourTuple { saddr: lo, sport, daddr: lo, dport }
    }

    #[test]
    fn mirror_swaps_the_ends() {
        let a = FourTuple {
            saddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            sport: 40000,
            daddr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            dport: 80,
        };
        let m = a.mirror();
        assert_eq!((m.saddr, m.sport, m.daddr, m.dport), (a.daddr, 80, a.saddr, 40000));
        assert_eq!(m.mirror(), a);
        assert!(!a.peer_surely_local(), "10.0.0.2 may be anywhere");
        assert!(t(1, 2).peer_surely_local());
        let mapped = FourTuple {
            saddr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            sport: 1,
            daddr: IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            dport: 2,
        };
        assert!(mapped.peer_surely_local());
        let same = FourTuple { daddr: a.saddr, ..a };
        assert!(same.peer_surely_local(), "this host's own address");
    }

    #[test]
    fn ends_are_pulled_together_and_the_rest_keeps_its_order() {
        // Worst first: the sender of 1 > 7777 is worst, its receiver is fourth.
        let mut items = vec![t(1, 7777), t(5, 6), t(2, 9), t(7777, 1), t(9, 2), t(8, 80)];
        let pairs = pair_ends(&mut items, |x| *x);
        assert_eq!(items, vec![t(1, 7777), t(7777, 1), t(5, 6), t(2, 9), t(9, 2), t(8, 80)]);
        assert_eq!(pairs, vec![Some(1), Some(0), None, Some(4), Some(3), None]);
    }

    #[test]
    fn reused_tuples_pair_first_with_first_and_self_is_no_pair() {
        let mut items = vec![t(1, 2), t(1, 2), t(2, 1), t(3, 3), t(2, 1)];
        let pairs = pair_ends(&mut items, |x| *x);
        assert_eq!(items, vec![t(1, 2), t(2, 1), t(1, 2), t(2, 1), t(3, 3)]);
        assert_eq!(pairs, vec![Some(1), Some(0), Some(3), Some(2), None]);
        let mut none: Vec<FourTuple> = Vec::new();
        assert!(pair_ends(&mut none, |x| *x).is_empty());
    }
}
