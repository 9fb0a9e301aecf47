//! `cargo lab up`: A and B side by side in one terminal.
//!
//! Ctrl+C reaches both services (they share the terminal's process group) and
//! each drains its requests and exits; the launcher waits for them. A service
//! that exits on its own (you stopped A to see B's `connection_refused`, or its
//! port is taken) is reported, and the other keeps running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::procs::{self, terminate};

/// Runs until Ctrl+C (or SIGTERM), or until both services have exited.
pub fn run() -> anyhow::Result<()> {
    procs::build()?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;

    let (tx, rx) = mpsc::channel();
    let mut a = procs::spawn("A", "service-a", &[], &[], tx.clone())?;
    let mut b = procs::spawn("B", "service-b", &[], &[], tx)?;
    let mut asked = false;
    let mut said = [false, false];
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((prefix, line)) => println!("{prefix} | {line}"),
            // Both children's pipes closed: they have exited.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        for (i, (name, child)) in [("A", &mut a), ("B", &mut b)].into_iter().enumerate() {
            if let (Some(status), false) = (child.try_wait()?, said[i]) {
                if !asked {
                    println!("lab | service {name} exited ({status}); the other keeps running, Ctrl+C stops it");
                }
                said[i] = true;
            }
        }
        if stop.load(Ordering::Relaxed) && !asked {
            // Outside a terminal the signal reached only us: pass it on.
            terminate(&a);
            terminate(&b);
            asked = true;
        }
    }
    a.wait()?;
    b.wait()?;
    Ok(())
}
