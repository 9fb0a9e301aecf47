//! `deploy/k8s` as rendered by `kubectl kustomize`: valid Kubernetes objects
//! (kubernetes-validate, offline) that keep the project's own rules.

use std::collections::BTreeSet;

use deploy::{render, repo, validate_kubernetes};
use yaml_rust2::{Yaml, YamlLoader};

/// Every rendered object, parsed.
fn objects() -> Vec<Yaml> {
    YamlLoader::load_from_str(&render()).expect("kubectl kustomize writes YAML")
}

fn find<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn str_of<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

/// `[server] port` of the service's shipped config: what it listens on.
fn config_port(service: &str) -> i64 {
    let text = std::fs::read_to_string(repo().join(format!("config/{service}.toml"))).unwrap();
    let config: toml::Table = text.parse().expect("config TOML");
    config["server"]["port"].as_integer().expect("server.port")
}

/// The value of env variable `name` in `container`, if set.
fn env<'a>(container: &'a Yaml, name: &str) -> Option<&'a str> {
    container["env"]
        .as_vec()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| e["value"].as_str())
}

/// Which container port a probe or Service target names (by name or number).
fn resolve_port(container: &Yaml, port: &Yaml) -> i64 {
    let ports = container["ports"].as_vec().expect("container ports");
    match port {
        Yaml::Integer(n) => *n,
        Yaml::String(name) => ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("no container port named {name}")),
        other => panic!("a port is a name or a number, not {other:?}"),
    }
}

/// Every object is valid against Kubernetes' own schemas, unknown fields
/// refused (kubernetes-validate --strict, its schemas bundled: no cluster).
#[test]
#[ignore = "needs kubectl and kubernetes-validate; .ci/run installs them and runs it"]
fn rendered_manifests_are_valid_kubernetes() {
    let rendered = render();
    let out = validate_kubernetes("manifests", &rendered);
    assert!(!out.contains("ERROR") && !out.contains("WARN"), "{out}");
    assert_eq!(
        YamlLoader::load_from_str(&rendered).unwrap().len(),
        5,
        "two Deployments, two Services, one ConfigMap"
    );
}

/// The project's rules: probes on the right endpoints and ports; ports as the
/// services listen; non-root, read-only, no privilege, no capabilities, with
/// resources; every address bound; B pointed at A's Service; A's config
/// file from the ConfigMap, mounted whole (never subPath) and equal to
/// config/service-a.toml; Prometheus told where to scrape.
#[test]
#[ignore = "needs kubectl; .ci/run installs it and runs it"]
fn rendered_manifests_keep_the_projects_rules() {
    let rendered = render();
    assert!(
        !rendered.contains("subPath"),
        "subPath hides ConfigMap edits"
    );
    let objects = objects();

    for (service, prefix) in [("service-a", "SERVICE_A"), ("service-b", "SERVICE_B")] {
        let deployment = find(&objects, "Deployment", service);
        let pod = &deployment["spec"]["template"];
        let spec = &pod["spec"];
        let containers = spec["containers"].as_vec().expect("containers");
        assert_eq!(containers.len(), 1, "{service}: one container");
        let container = &containers[0];
        let port = config_port(service);

        // Listens where the config says, on every address of the pod.
        let declared: Vec<i64> = container["ports"]
            .as_vec()
            .expect("ports")
            .iter()
            .filter_map(|p| p["containerPort"].as_i64())
            .collect();
        assert_eq!(declared, [port], "{service}: containerPort is server.port");
        assert_eq!(
            env(container, &format!("{prefix}_SERVER__HOST")),
            Some("0.0.0.0"),
            "{service}: a pod's 127.0.0.1 is unreachable from outside it"
        );

        // Probes.
        let probe = |name: &str| -> Option<(&str, i64)> {
            let get = &container[name]["httpGet"];
            (!get.is_badvalue()).then(|| {
                (
                    str_of(&get["path"], "probe path"),
                    resolve_port(container, &get["port"]),
                )
            })
        };
        match service {
            "service-a" => {
                assert_eq!(probe("readinessProbe"), Some(("/health", port)));
            }
            _ => {
                assert_eq!(probe("readinessProbe"), Some(("/ready", port)));
                assert_eq!(probe("livenessProbe"), Some(("/health", port)));
                // /ready waits up to upstream.timeout_ms (1 s) for A.
                let timeout = container["readinessProbe"]["timeoutSeconds"].as_i64();
                assert!(
                    timeout > Some(1),
                    "{service}: readiness timeoutSeconds {timeout:?}"
                );
            }
        }

        // Non-root and locked down.
        let pod_security = &spec["securityContext"];
        assert_eq!(
            pod_security["runAsNonRoot"].as_bool(),
            Some(true),
            "{service}"
        );
        let uid = pod_security["runAsUser"].as_i64().expect("runAsUser");
        assert_ne!(uid, 0, "{service}");
        let security = &container["securityContext"];
        assert_eq!(
            security["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{service}"
        );
        assert_eq!(
            security["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{service}"
        );
        let dropped: Vec<&str> = security["capabilities"]["drop"]
            .as_vec()
            .expect("capabilities.drop")
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert_eq!(dropped, ["ALL"], "{service}");
        assert!(security["privileged"].as_bool() != Some(true), "{service}");
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !container["resources"][bound][resource].is_badvalue(),
                    "{service}: resources.{bound}.{resource}"
                );
            }
        }

        // Prometheus scrapes the port that serves /metrics.
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
        assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(port.to_string().as_str()),
            "{service}"
        );

        // The Service selects these pods and reaches the container's port.
        let svc = find(&objects, "Service", service);
        let labels = &pod["metadata"]["labels"];
        let selector = svc["spec"]["selector"].as_hash().expect("a selector");
        assert!(!selector.is_empty());
        for (key, value) in selector {
            assert_eq!(
                &labels[str_of(key, "label")],
                value,
                "{service}: selector {key:?}"
            );
        }
        let svc_ports = svc["spec"]["ports"].as_vec().expect("Service ports");
        for p in svc_ports {
            assert_eq!(resolve_port(container, &p["targetPort"]), port, "{service}");
        }
        assert_eq!(
            svc_ports[0]["port"].as_i64(),
            Some(port),
            "{service}: same port in and out"
        );
    }

    // B calls A by A's Service name and port.
    let b = &find(&objects, "Deployment", "service-b")["spec"]["template"]["spec"]["containers"][0];
    let a_service = find(&objects, "Service", "service-a");
    let a_port = a_service["spec"]["ports"][0]["port"].as_i64().unwrap();
    assert_eq!(
        env(b, "SERVICE_B_UPSTREAM__URL"),
        Some(format!("http://service-a:{a_port}").as_str())
    );

    // A's config: the ConfigMap's file, mounted as a whole folder, named by --config.
    let a_pod = &find(&objects, "Deployment", "service-a")["spec"]["template"]["spec"];
    let a = &a_pod["containers"][0];
    let args: Vec<&str> = a["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(args, ["--config", "/etc/service-a/service-a.toml"]);
    let mount = a["volumeMounts"]
        .as_vec()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/etc/service-a"))
        .expect("a mount at /etc/service-a");
    assert!(mount["subPath"].is_badvalue());
    let volume_name = str_of(&mount["name"], "volume name");
    let volume = a_pod["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some(volume_name))
        .expect("the mounted volume");
    let map_name = str_of(&volume["configMap"]["name"], "configMap name");
    assert!(
        volume["configMap"]["items"].is_badvalue(),
        "every key of the ConfigMap is a file"
    );
    let config_map = find(&objects, "ConfigMap", map_name);
    let shipped = std::fs::read_to_string(repo().join("config/service-a.toml")).unwrap();
    assert_eq!(
        config_map["data"]["service-a.toml"].as_str(),
        Some(shipped.as_str()),
        "deploy/k8s/service-a.toml must equal config/service-a.toml"
    );
    let names: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains("service-a-config"), "{names:?}");
}
