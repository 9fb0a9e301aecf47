//! The benchmark's baselines: nginx in temporary folders on free ports, one
//! worker each, started and stopped by the lab (nothing installed, no
//! system nginx touched).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::tools::{free_port, pin_to_core0};
use crate::procs::{terminate, PATIENCE};

/// nginx in temp folders on free ports, one worker each: a front answering A's
/// JSON itself and proxying to it in the same worker, and an upstream in a
/// process of its own that the front also proxies to (as B calls A).
pub struct Nginx {
    _front: Instance,
    _upstream: Instance,
    pub direct: String,
    pub proxy_same: String,
    pub proxy_apart: String,
    /// The upstream nginx itself, for A's proxy mode.
    pub upstream: String,
}

impl Nginx {
    pub fn start(pin: bool) -> anyhow::Result<Self> {
        let [direct, same, apart, upstream] =
            [free_port()?, free_port()?, free_port()?, free_port()?];
        let answer =
            r#"location / { default_type application/json; return 200 '{"echo":"hello"}'; }"#;
        let upstream_conf = format!("server {{ listen 127.0.0.1:{upstream}; {answer} }}");
        let front_conf = format!(
            r#"upstream same {{ server 127.0.0.1:{direct}; keepalive 64; }}
    upstream apart {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{ listen 127.0.0.1:{direct}; {answer} }}
    server {{
        listen 127.0.0.1:{same};
        location / {{ proxy_pass http://same; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{apart};
        location / {{ proxy_pass http://apart; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}"#
        );
        let upstream_nginx = Instance::start(&upstream_conf, &[upstream], pin)?;
        let front = Instance::start(&front_conf, &[direct, same, apart], pin)?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        Ok(Self {
            _front: front,
            _upstream: upstream_nginx,
            direct: url(direct),
            proxy_same: url(same),
            proxy_apart: url(apart),
            upstream: url(upstream),
        })
    }
}

/// One nginx master and worker, with its config, pid and temp files in `dir`.
struct Instance {
    child: Child,
    dir: tempfile::TempDir,
}

impl Instance {
    fn start(servers: &str, ports: &[u16], pin: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let conf = service_procs::nginx::config(dir.path(), true, servers);
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new("nginx")
            .args([
                "-c",
                &path.display().to_string(),
                "-p",
                &dir.path().display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        for &port in ports {
            wait_port(port)?;
        }
        if pin {
            // The master and its worker: pin every nginx process of this config.
            for pid in pids_of(dir.path())? {
                pin_to_core0(pid)?;
            }
        }
        Ok(Self { child, dir })
    }
}

impl Drop for Instance {
    /// SIGTERM to the master is nginx's fast shutdown: it stops its worker
    /// and exits (a killed master would leave the worker running). A master
    /// that does not exit in time is killed; each failure is said, with what
    /// may be left running.
    fn drop(&mut self) {
        let pid = self.child.id();
        let stopped = match terminate(&mut self.child) {
            Ok(_) => wait_exit(&mut self.child, PATIENCE),
            Err(e) => {
                eprintln!("lab | warning: could not stop nginx ({e:#})");
                false
            }
        };
        if !stopped {
            if let Err(e) = self.child.kill() {
                eprintln!("lab | warning: could not kill nginx (process {pid}): {e}");
            }
            if let Err(e) = self.child.wait() {
                eprintln!("lab | warning: nginx (process {pid}) may still be running: {e}");
            }
            eprintln!(
                "lab | warning: nginx's worker may outlive its killed master: \
                 look for `nginx: worker process` (config in {})",
                self.dir.path().display()
            );
        }
    }
}

/// Waits up to `patience` for `child` to exit; whether it did.
fn wait_exit(child: &mut Child, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return false,
        }
    }
    false
}

/// nginx processes started with the config in `dir` (`pgrep`, Linux): the
/// master, by its command line, and its worker, as its child.
fn pids_of(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let pgrep = |args: &[&str]| -> anyhow::Result<Vec<u32>> {
        let out = Command::new("pgrep")
            .args(args)
            .output()
            .context("running pgrep to find nginx's processes")?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    };
    let mut pids = pgrep(&["-f", &dir.display().to_string()])?;
    // The worker's command line is "nginx: worker process": find it as a child.
    for parent in pids.clone() {
        pids.extend(pgrep(&["-P", &parent.to_string()])?);
    }
    Ok(pids)
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("nginx did not listen on {port}")
}
