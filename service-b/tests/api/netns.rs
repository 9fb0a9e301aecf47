//! Real network faults, not a stopped process: A in a network namespace of its
//! own behind a veth pair, then its link cut (a black hole: packets vanish, no
//! reset, no refusal) or its address made unreachable.
//!
//! They need root and iproute2, so they are `#[ignore]`d for the README's test
//! command; `.ci/run` installs iproute2 and runs them as root, where a setup
//! that fails fails the test. The latency test also needs the kernel's
//! `sch_netem`, and `.ci/run` runs it only where a netem qdisc can be made
//! (saying so where it cannot). The addresses are the test's own hosts,
//! inside namespaces it creates and deletes.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use testkit::http::get;
use testkit::{binary, Launch, Proc};

use crate::start_b;

/// A namespace holding A's end of a veth pair; removed on drop.
struct Net {
    ns: String,
    host_if: String,
    a_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Net {
    /// A fresh namespace with A's side at 10.201.N.2 and ours at 10.201.N.1;
    /// panics, saying what is missing, where it cannot be made.
    fn create() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() + SEQ.fetch_add(1, Ordering::Relaxed) * 7) % 250 + 1;
        let net = Self {
            ns: format!("lab-a-{}-{n}", std::process::id()),
            host_if: format!("vlab{n}h"),
            a_ip: format!("10.201.{n}.2"),
        };
        assert!(
            ip(&["netns", "add", &net.ns]),
            "cannot create a network namespace: needs root and iproute2"
        );
        let peer = format!("vlab{n}a");
        let host_ip = format!("10.201.{n}.1/30");
        let a_cidr = format!("{}/30", net.a_ip);
        let ok = ip(&[
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]) && ip(&["link", "set", &peer, "netns", &net.ns])
            && ip(&["addr", "add", &host_ip, "dev", &net.host_if])
            && ip(&["link", "set", &net.host_if, "up"])
            && ip(&["-n", &net.ns, "addr", "add", &a_cidr, "dev", &peer])
            && ip(&["-n", &net.ns, "link", "set", &peer, "up"])
            && ip(&["-n", &net.ns, "link", "set", "lo", "up"]);
        assert!(ok, "cannot set up a veth pair into {}", net.ns);
        net
    }

    /// A inside the namespace, on a free port of its address.
    fn start_a(&self) -> Proc {
        Launch::new(
            binary("service-a"),
            &format!("[server]\nhost = \"{}\"\nport = 0\n", self.a_ip),
        )
        .wrapped(&["ip", "netns", "exec", &self.ns])
        .start()
    }

    /// Takes A's end of the link down: packets to A now vanish without a trace.
    fn black_hole(&self) {
        let peer = format!("{}a", self.host_if.trim_end_matches('h'));
        assert!(ip(&["-n", &self.ns, "link", "set", &peer, "down"]));
    }

    /// Delays every packet A sends by `ms` with `tc netem`; panics where the
    /// kernel has no netem.
    fn add_latency(&self, ms: u32) {
        let peer = format!("{}a", self.host_if.trim_end_matches('h'));
        let delay = format!("{ms}ms");
        let added = Command::new("tc")
            .args([
                "-n", &self.ns, "qdisc", "add", "dev", &peer, "root", "netem", "delay", &delay,
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            added,
            "`tc qdisc ... netem` failed: no tc, or no sch_netem in this kernel"
        );
    }

    /// Marks A's address unreachable in our routing table: connecting fails at
    /// once with "no route to host", and no packet leaves this machine.
    fn remove_route(&self) {
        let a_host = format!("{}/32", self.a_ip);
        assert!(ip(&["route", "add", "unreachable", &a_host]));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        ip(&["route", "del", "unreachable", &format!("{}/32", self.a_ip)]);
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.ns]);
    }
}

/// A black-holed A is a `timeout` on time: not a hang, not `connection_refused`,
/// both on a pooled connection and on a new one (whose SYN goes unanswered).
#[test]
#[ignore = "needs root and iproute2; .ci/run runs it"]
fn black_holed_a_is_a_timeout() {
    let _clock = crate::timing();
    let net = Net::create();
    let a = net.start_a();
    let b = start_b(&a.url, 300);
    assert_eq!(get(&format!("{}/call-echo?msg=up", b.url)).status, 200);

    net.black_hole();
    for _ in 0..2 {
        let reply = get(&format!("{}/call-echo?msg=hole", b.url));
        assert_eq!(reply.json()["error"], "timeout", "{}", reply.body);
        let on_time = Duration::from_millis(300)..Duration::from_millis(350);
        assert!(on_time.contains(&reply.elapsed), "{:?}", reply.elapsed);
    }
    drop(a);
}

/// No route to A is `unreachable`, answered at once.
#[test]
#[ignore = "needs root and iproute2; .ci/run runs it"]
fn no_route_is_unreachable() {
    let _clock = crate::timing();
    let net = Net::create();
    let a = net.start_a();
    let b = start_b(&a.url, 1000);
    net.remove_route();
    let reply = get(&format!("{}/call-echo?msg=x", b.url));
    assert_eq!(reply.json()["error"], "unreachable", "{}", reply.body);
    assert_eq!(reply.json()["http_status"], 503);
    assert!(
        reply.elapsed < Duration::from_millis(100),
        "{:?}",
        reply.elapsed
    );
    drop(a);
}

/// A real network latency: 200 ms on every packet from A. A call needs two of
/// A's packets in turn (SYN-ACK, then the answer), so with a 300 ms budget B
/// times out on time, and with 1000 ms it succeeds.
#[test]
#[ignore = "needs root, iproute2 and sch_netem; .ci/run runs it where the kernel has netem"]
fn network_latency_meets_the_deadline() {
    let _clock = crate::timing();
    let net = Net::create();
    let a = net.start_a();
    net.add_latency(200);
    let tight = start_b(&a.url, 300);
    let reply = get(&format!("{}/call-echo?msg=slow", tight.url));
    assert_eq!(reply.json()["error"], "timeout", "{}", reply.body);
    let on_time = Duration::from_millis(300)..Duration::from_millis(350);
    assert!(on_time.contains(&reply.elapsed), "{:?}", reply.elapsed);

    let loose = start_b(&a.url, 1000);
    let reply = get(&format!("{}/call-echo?msg=slow", loose.url));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.elapsed >= Duration::from_millis(400),
        "{:?}",
        reply.elapsed
    );
}

/// The course's two failures across a real link, A on a host of its own (a
/// namespace behind a veth pair), as students who run A and B on two
/// machines see them: A slower than the deadline is a `timeout` on time; A
/// stopped is `connection_refused`, at once; A back is served again.
#[test]
#[ignore = "needs root and iproute2; .ci/run runs it"]
fn the_course_across_a_link() {
    let _clock = crate::timing();
    let net = Net::create();
    let mut a = net.start_a();
    let b = start_b(&a.url, 300);
    let call = |headers: &[(&str, &str)]| {
        testkit::http::get_with(&format!("{}/call-echo?msg=link", b.url), headers)
    };
    assert_eq!(call(&[]).status, 200);

    let slow = call(&[("x-fault-delay-ms", "1000")]);
    assert_eq!(slow.json()["error"], "timeout", "{}", slow.body);
    let on_time = Duration::from_millis(300)..Duration::from_millis(350);
    assert!(on_time.contains(&slow.elapsed), "{:?}", slow.elapsed);

    let port = a.port();
    let relaunch = a.relaunch(
        binary("service-a"),
        &format!("[server]\nhost = \"{}\"\nport = {port}\n", net.a_ip),
    );
    a.kill();
    let stopped = call(&[]);
    assert_eq!(
        stopped.json()["error"],
        "connection_refused",
        "{}",
        stopped.body
    );
    assert!(
        stopped.elapsed < Duration::from_millis(100),
        "{:?}",
        stopped.elapsed
    );

    let _a = relaunch.wrapped(&["ip", "netns", "exec", &net.ns]).start();
    assert_eq!(call(&[]).status, 200);
}
