//! Service A across processes: the real binary on a free port with a temporary config.

mod admin;
mod config;
mod echo;
mod faults;
mod http_edge;
mod limits;
mod proxy;
mod readme_fixture;
mod reload;
mod robust;
mod shutdown;

use testkit::{Launch, Proc};

/// A's config with `[fault]` set to `fault`, on a free port.
fn a_config(fault: &str) -> String {
    format!("[server]\nport = 0\n\n[fault]\n{fault}\n")
}

fn launch(fault: &str) -> Launch {
    Launch::new(env!("CARGO_BIN_EXE_service-a"), &a_config(fault))
}

/// A with `fault` as its `[fault]` section.
fn start_a(fault: &str) -> Proc {
    launch(fault).start()
}
