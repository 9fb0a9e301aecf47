//! `compose.yaml`, the lab for Docker Desktop: valid against the Compose
//! Specification's schema (offline; no container runtime here), and keeping
//! the lab's promises: both images built, configs mounted as a folder so A
//! reloads live, healthchecks on `/health`, ports on the host's loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy::{repo, run};
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string(repo().join("compose.yaml")).expect("compose.yaml");
    YamlLoader::load_from_str(&text)
        .expect("compose.yaml is YAML")
        .remove(0)
}

fn strs(yaml: &Yaml) -> Vec<&str> {
    yaml.as_vec()
        .unwrap_or_else(|| panic!("not a list: {yaml:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

/// `[server] port` of the shipped config.
fn config_port(service: &str) -> i64 {
    let text = std::fs::read_to_string(repo().join(format!("config/{service}.toml"))).unwrap();
    let config: toml::Table = text.parse().expect("config TOML");
    config["server"]["port"].as_integer().expect("server.port")
}

/// Each service is built from a stage of the Dockerfile named after it,
/// reads its config from `./config` mounted as a folder (read-only), listens
/// on all of the container's addresses, is published on the host's loopback
/// at its usual port, and is checked on `/health`; B calls A by its service
/// name and starts once A is healthy.
#[test]
fn compose_keeps_the_labs_promises() {
    let doc = compose();
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    for (service, env) in [("service-a", "SERVICE_A"), ("service-b", "SERVICE_B")] {
        let s = &doc["services"][service];
        let port = config_port(service);
        assert_eq!(s["build"]["context"].as_str(), Some("."), "{service}");
        assert_eq!(s["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
        assert_eq!(s["build"]["target"].as_str(), Some(service));
        assert!(
            dockerfile.contains(&format!(" AS {service}\n")),
            "no stage {service} in deploy/Dockerfile"
        );

        let volumes = s["volumes"].as_vec().expect("volumes");
        assert_eq!(volumes.len(), 1, "{service}: {volumes:?}");
        let mount = &volumes[0];
        assert_eq!(mount["type"].as_str(), Some("bind"));
        assert_eq!(mount["source"].as_str(), Some("./config"));
        assert_eq!(mount["read_only"].as_bool(), Some(true));
        let target = mount["target"].as_str().expect("a mount target");
        let command = strs(&s["command"]);
        assert_eq!(command[0], "--config", "{service}");
        let file = Path::new(command[1]);
        // The folder is mounted, never the file: an editor's save replaces
        // the file, which a single-file bind mount would never show.
        assert_eq!(file.parent(), Some(Path::new(target)), "{service}");
        let name = file.file_name().unwrap();
        assert!(repo().join("config").join(name).exists(), "{file:?}");

        assert_eq!(
            s["environment"][format!("{env}_SERVER__HOST").as_str()].as_str(),
            Some("0.0.0.0"),
            "{service}"
        );
        assert_eq!(
            strs(&s["ports"]),
            [format!("127.0.0.1:{port}:{port}")],
            "{service}: published on loopback only, at its port"
        );
        let check = strs(&s["healthcheck"]["test"]).join(" ");
        assert!(
            check.starts_with("CMD curl -fsS")
                && check.ends_with(&format!("http://127.0.0.1:{port}/health")),
            "{service}: {check}"
        );
    }
    let b = &doc["services"]["service-b"];
    assert_eq!(
        b["environment"]["SERVICE_B_UPSTREAM__URL"].as_str(),
        Some(format!("http://service-a:{}", config_port("service-a")).as_str())
    );
    assert_eq!(
        b["depends_on"]["service-a"]["condition"].as_str(),
        Some("service_healthy")
    );
    // The build context leaves out target/ (gigabytes).
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}

/// docker-compose 1.29.2's wheel from PyPI, which holds the Compose
/// Specification's schema; .ci/run downloads it (`pip download --no-deps`).
fn wheel() -> PathBuf {
    std::env::var_os("COMPOSE_SPEC_WHEEL").map_or_else(
        || repo().join("target/compose-spec/docker_compose-1.29.2-py2.py3-none-any.whl"),
        PathBuf::from,
    )
}

fn check(file: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("deploy/compose_check.py"))
        .arg(wheel())
        .arg(file)
        .output()
        .expect("python3 runs")
}

/// compose.yaml validates against the Compose Specification's JSON schema;
/// the same check refuses a copy with a misspelt key, so it really checks.
#[test]
#[ignore = "needs python3 with jsonschema and PyYAML, and docker-compose 1.29.2's wheel (its schema); .ci/run fetches them"]
fn compose_is_valid_against_the_compose_specification() {
    assert!(
        wheel().exists(),
        "{} is missing: python3 -m pip download --no-deps docker-compose==1.29.2 -d target/compose-spec (.ci/run does)",
        wheel().display()
    );
    let ok = run(
        Command::new("python3")
            .arg(repo().join("deploy/compose_check.py"))
            .arg(wheel())
            .arg(repo().join("compose.yaml")),
        "python3 -m pip install jsonschema pyyaml (.ci/run does)",
    );
    assert!(
        ok.contains("valid against the Compose Specification"),
        "{ok}"
    );

    let dir = std::env::temp_dir().join(format!("compose-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("compose.yaml");
    let text = std::fs::read_to_string(repo().join("compose.yaml")).unwrap();
    std::fs::write(&bad, text.replace("healthcheck:", "helthcheck:")).unwrap();
    let out = check(&bad);
    let said = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a misspelt key passed: {said}");
    assert!(said.contains("'helthcheck'"), "{said}");
}
