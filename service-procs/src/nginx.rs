//! nginx's configuration for an instance of its own: everything it writes
//! (pid, error log, temp files) in one folder, no access log, the `http`
//! block the caller gives. The bench's baselines and the proxy tests' real
//! upstream both start nginx this way, so that neither touches a system nginx.

use std::path::Path;

/// The text of `nginx.conf` for one worker whose files all live in `dir`,
/// with `http` (server and upstream blocks) inside its `http { }` block.
/// `master_process: false` makes it one process (a test's upstream, killed
/// when dropped); `true` keeps nginx's master, which stops its worker on
/// SIGTERM (the bench pins and stops both).
pub fn config(dir: &Path, master_process: bool, http: &str) -> String {
    let dir = dir.display();
    let master = if master_process {
        ""
    } else {
        "master_process off;\n"
    };
    format!(
        r#"worker_processes 1;
{master}daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    {http}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::config;
    use std::path::Path;

    /// Every file nginx writes is in the folder; the master is off only when
    /// asked; the caller's blocks are inside `http { }`.
    #[test]
    fn keeps_everything_in_its_folder() {
        let dir = Path::new("/tmp/x");
        let one = config(dir, false, "server { listen 127.0.0.1:1; }");
        assert!(one.contains("master_process off;"), "{one}");
        for key in [
            "pid",
            "error_log",
            "client_body_temp_path",
            "proxy_temp_path",
        ] {
            assert!(one.contains(&format!("{key} /tmp/x")), "{key}: {one}");
        }
        let http = one.find("http {").unwrap();
        assert!(one.find("server { listen").unwrap() > http, "{one}");
        assert!(!config(dir, true, "").contains("master_process"));
    }
}
