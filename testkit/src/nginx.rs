//! A real nginx on a free loopback port, for A's proxy tests: one process
//! (`master_process off`), its config, pid and temp files in a folder of its
//! own, stopped when dropped. The tests that use it are
//! `#[ignore = "needs nginx"]`; `.ci/run` installs nginx and runs them.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use service_procs::PATIENCE;

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Answers `/echo?msg=...` as A does (`{"echo":"..."}`, the message as
/// sent: plain words only), `/missing` with nginx's own 404, and anything
/// else with a short JSON of its own.
pub const ECHO_LIKE_A: &str = r#"
    location = /missing { return 404; }
    location = /echo { default_type application/json; return 200 '{"echo":"$arg_msg"}'; }
    location / { default_type application/json; return 200 '{"nginx":"$request_method $request_uri"}'; }
"#;

impl Nginx {
    /// nginx with `locations` in its one server block; panics, naming the
    /// tool, if nginx cannot be run (the test needs it).
    pub fn start(locations: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::fake::free_port();
        let conf = service_procs::nginx::config(
            dir.path(),
            false,
            &format!("server {{ listen 127.0.0.1:{port}; {locations} }}"),
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run nginx ({e}): apt-get install nginx-light (.ci/run does)")
            });
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
