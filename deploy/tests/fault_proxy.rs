//! The fault-proxy component (`deploy/k8s/components/fault-proxy`), rendered
//! through its example (`deploy/k8s/examples/fault-proxy`): A beside any
//! container of a pod, in front of it on the pod's loopback, its config
//! from a ConfigMap mounted whole (live edits), and that config one the real
//! A starts with.

use std::process::Command;

use deploy::{repo, run, validate_kubernetes};
use yaml_rust2::{Yaml, YamlLoader};

fn rendered() -> String {
    run(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(repo().join("deploy/k8s/examples/fault-proxy")),
        "kubectl is not installed (Debian: apt-get install kubernetes-client; .ci/run does)",
    )
}

fn find<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered example"))
}

fn port_named(container: &Yaml, name: &str) -> i64 {
    container["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no port named {name}"))
}

#[test]
#[ignore = "needs kubectl; .ci/run installs it and runs it"]
fn the_sidecar_stands_in_front_of_the_app() {
    let text = rendered();
    assert!(!text.contains("subPath"), "subPath hides ConfigMap edits");
    let objects = YamlLoader::load_from_str(&text).unwrap();
    let deployment = find(&objects, "Deployment", "app");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap();
    assert_eq!(containers.len(), 2, "the app and the fault proxy");
    let proxy = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("fault-proxy"))
        .expect("a fault-proxy container");
    let app = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("app"))
        .unwrap();

    // Its config, from the ConfigMap mounted whole where --config points.
    let args: Vec<&str> = proxy["args"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args, ["--config", "/etc/fault-proxy/fault-proxy.toml"]);
    let mount = &proxy["volumeMounts"][0];
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/fault-proxy"));
    let volume = &deployment["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    let map = volume["configMap"]["name"].as_str().unwrap();
    let data = find(&objects, "ConfigMap", map)["data"]["fault-proxy.toml"]
        .as_str()
        .expect("fault-proxy.toml in the ConfigMap");
    let config: toml::Table = data.parse().expect("TOML");

    // A listens where the pod says, forwards to the app on loopback, keeps
    // its control API on loopback; the Service goes through A.
    assert_eq!(
        config["server"]["port"].as_integer(),
        Some(port_named(proxy, "fault-proxy"))
    );
    assert_eq!(
        config["proxy"]["upstream"].as_str().unwrap(),
        format!("http://127.0.0.1:{}", port_named(app, "app"))
    );
    assert!(config["admin"]["listen"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let service = find(&objects, "Service", "app");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("fault-proxy")
    );
    assert_eq!(
        proxy["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/health")
    );
    let security = &proxy["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));

    // The real A starts with this config (ports moved to free ones).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fault-proxy.toml");
    std::fs::write(&file, data).unwrap();
    let a = testkit::Launch::new(testkit::binary("service-a"), "")
        .config_file(&file)
        .env("SERVICE_A_SERVER__PORT", "0")
        .env("SERVICE_A_ADMIN__LISTEN", "127.0.0.1:0")
        .start();
    a.wait_line(&["event=admin_start"]);
}

/// The example, sidecar included, is valid against Kubernetes' own schemas,
/// unknown fields refused (kubernetes-validate --strict, offline).
#[test]
#[ignore = "needs kubectl and kubernetes-validate; .ci/run installs them and runs it"]
fn the_example_is_valid_kubernetes() {
    let out = validate_kubernetes("fault-proxy", &rendered());
    assert!(!out.contains("ERROR") && !out.contains("WARN"), "{out}");
}
