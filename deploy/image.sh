#!/usr/bin/env bash
# Builds one OCI image per service with buildah, from the release binaries:
# FROM scratch, the binary, its loader and the libraries ldd names, the default
# config, a non-root numeric user. No base image is pulled and nothing is run
# inside the image while building, so no registry and no container runtime are
# needed.
#
#   deploy/image.sh [TAG]      (just image; TAG defaults to the workspace version)
#
# Images: localhost/lab/service-a:TAG and localhost/lab/service-b:TAG, in
# buildah's local storage (`buildah images`). Export one with
#   buildah push localhost/lab/service-a:TAG oci-archive:service-a.tar
set -euo pipefail
cd "$(dirname "$0")/.."

command -v buildah >/dev/null || {
    echo "deploy/image.sh: buildah is not installed (Debian: apt-get install buildah)" >&2
    exit 1
}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
tag=${1:-$version}
target=${CARGO_TARGET_DIR:-target}

cargo build --release --locked -p service-a -p service-b

# The user the services run as: numeric, so Kubernetes' runAsNonRoot can check
# it without a passwd lookup (deploy/k8s sets the same ids).
uid=10001

stage_root=$(mktemp -d)
trap 'rm -rf "$stage_root"' EXIT

for svc in service-a service-b; do
    case $svc in
        service-a) port=8080 prefix=SERVICE_A ;;
        service-b) port=8081 prefix=SERVICE_B ;;
    esac
    bin="$target/release/$svc"
    root="$stage_root/$svc"

    install -D -m 0755 "$bin" "$root/usr/local/bin/$svc"
    # The loader and each library at the path ldd gives (the paths the binary
    # asks for), as regular files: /lib64/ld-linux-x86-64.so.2 is a symlink on
    # the build machine, and its target is not in the image.
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
    install -D -m 0644 "config/$svc.toml" "$root/etc/$svc/$svc.toml"
    # Names for the ids, for tools that print them; glibc resolves host names
    # with its built-in files and dns backends (Kubernetes mounts /etc/hosts
    # and /etc/resolv.conf).
    printf 'root:x:0:0:root:/:/sbin/nologin\nlab:x:%s:%s:lab:/:/sbin/nologin\n' "$uid" "$uid" \
        > "$root/etc/passwd"
    printf 'root:x:0:\nlab:x:%s:\n' "$uid" > "$root/etc/group"
    printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"

    ctr=$(buildah from scratch)
    buildah copy --quiet "$ctr" "$root" / >/dev/null
    # A container's loopback is its own: listen on every address. B's
    # upstream.url still names 127.0.0.1 and must be set where B runs
    # (deploy/k8s sets SERVICE_B_UPSTREAM__URL).
    buildah config \
        --user "$uid:$uid" \
        --port "$port/tcp" \
        --workingdir / \
        --env "${prefix}_SERVER__HOST=0.0.0.0" \
        --entrypoint "[\"/usr/local/bin/$svc\"]" \
        --cmd "[\"--config\", \"/etc/$svc/$svc.toml\"]" \
        --label "org.opencontainers.image.title=$svc" \
        --label "org.opencontainers.image.version=$tag" \
        "$ctr"
    buildah commit --quiet --rm "$ctr" "localhost/lab/$svc:$tag" >/dev/null
    echo "deploy/image.sh: built localhost/lab/$svc:$tag"
done
