//! The `service-b` binary: everything is in the library (`src/lib.rs`).

#![forbid(unsafe_code)]

fn main() {
    service_b::run();
}
