# The lab's commands. `just` is optional: each recipe says its plain cargo equivalent.

# On Windows, recipes run in PowerShell (just's default there is `sh`, which
# Windows lacks); elsewhere in `sh`. The cargo recipes read the same in both.
set windows-shell := ["powershell.exe", "-NoLogo", "-NoProfile", "-Command"]

# List the recipes (private: `just --list` shows the recipes, not itself).
[private]
default:
    @just --list

# Both services in one terminal, logs prefixed; type `a stop`, `a start`, `status`, `quit`.  (cargo lab up)
up:
    cargo lab up

# Service A alone on 127.0.0.1:8080, as the course runs it.  (cargo run -p service-a)
run-a:
    cargo run -p service-a

# Service B alone on 127.0.0.1:8081.  (cargo run -p service-b)
run-b:
    cargo run -p service-b

# Every test.  (cargo test --workspace)
test:
    cargo test --workspace

# What CI runs: fmt, clippy, every test.  (bash .ci/run)
ci:
    bash .ci/run

# The lab report to hand in, lab-report.md: the course's proofs and answers, then every failure.  (cargo lab demo)
demo:
    cargo lab demo

# One experiment, NAME one of course, retries, breaker, trickle, overload, proxy; report in runs/.  (cargo lab experiment experiments/NAME.toml)
experiment name *args:
    cargo lab experiment experiments/{{name}}.toml {{args}}

# A and B beside nginx under wrk (release build).  (cargo run --release -p lab -- bench)
bench seconds="15":
    cargo run --release -p lab -- bench --seconds {{seconds}}

# OCI images of both services, FROM scratch, with buildah (no registry, no runtime).  (bash deploy/image.sh)
image tag="":
    bash deploy/image.sh {{tag}}

# The Kubernetes manifests as applied: Deployments, Services, A's ConfigMap.  (kubectl kustomize deploy/k8s)
manifests:
    kubectl kustomize deploy/k8s
