//! `deploy/image.sh` end to end: build both images with buildah, export them
//! as OCI archives, unpack their layers, and run each binary through the
//! image's own loader and libraries.

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy::{repo, run};
use serde_json::Value;
use testkit::http::get;
use testkit::Launch;

const BUILDAH: &str = "buildah is not installed (Debian: apt-get install buildah; .ci/run does)";

/// The images `deploy/image.sh` built under one tag, removed when dropped.
struct Images {
    tag: String,
}

impl Images {
    fn build() -> Self {
        let tag = format!("test-{}", std::process::id());
        run(
            Command::new("bash")
                .arg(repo().join("deploy/image.sh"))
                .arg(&tag),
            BUILDAH,
        );
        Self { tag }
    }

    fn name(&self, service: &str) -> String {
        format!("localhost/lab/{service}:{}", self.tag)
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for service in ["service-a", "service-b"] {
            let _ = Command::new("buildah")
                .args(["rmi", &self.name(service)])
                .output();
        }
    }
}

/// An image as a folder: its config, and its layers unpacked into `root`.
struct Unpacked {
    config: Value,
    root: PathBuf,
}

/// Exports `image` with `buildah push ... oci-archive:` and unpacks it into `dir`.
fn unpack(image: &str, dir: &Path) -> Unpacked {
    let archive = dir.join("image.tar");
    run(
        Command::new("buildah")
            .arg("push")
            .arg("--quiet")
            .arg(image)
            .arg(format!("oci-archive:{}", archive.display())),
        BUILDAH,
    );
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout),
        "tar",
    );
    let blob = |digest: &Value| {
        let digest = digest.as_str().expect("a digest");
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        layout.join("blobs/sha256").join(hex)
    };
    let json = |path: PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("JSON")
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let config = json(blob(&manifest["config"]["digest"]));
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let layers = manifest["layers"].as_array().expect("layers");
    assert!(!layers.is_empty(), "{manifest}");
    for layer in layers {
        // GNU tar recognises a gzip layer by itself.
        run(
            Command::new("tar")
                .arg("-xf")
                .arg(blob(&layer["digest"]))
                .arg("-C")
                .arg(&root),
            "tar",
        );
    }
    Unpacked { config, root }
}

impl Unpacked {
    /// `[loader, --library-path, dirs]`: running a program with these words
    /// first uses only the image's loader and libraries, never the host's.
    fn loader(&self) -> Vec<String> {
        let loader = self.root.join("lib64/ld-linux-x86-64.so.2");
        assert!(loader.is_file(), "no loader in the image at {loader:?}");
        let mut dirs = Vec::new();
        for dir in ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"] {
            let dir = self.root.join(dir);
            if dir.is_dir() {
                dirs.push(dir.display().to_string());
            }
        }
        vec![
            loader.display().to_string(),
            "--library-path".to_owned(),
            dirs.join(":"),
        ]
    }

    fn file(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

/// Both images are FROM scratch with a numeric non-root user, the port and
/// the default config; each binary runs from its image's own loader and
/// libraries, answers `--version`, and serves: A's `/health`, and B's
/// `/call-echo` through A.
#[test]
#[ignore = "needs buildah; .ci/run installs it and runs it"]
fn images_run_from_their_own_files() {
    let images = Images::build();
    let dir = tempfile_dir();
    let mut unpacked = Vec::new();
    for (service, port, prefix) in [
        ("service-a", "8080/tcp", "SERVICE_A"),
        ("service-b", "8081/tcp", "SERVICE_B"),
    ] {
        let out = dir.join(service);
        std::fs::create_dir_all(&out).unwrap();
        let image = unpack(&images.name(service), &out);
        let config = &image.config["config"];

        let user = config["User"].as_str().expect("a USER");
        let (uid, gid) = user.split_once(':').expect("USER is uid:gid");
        let uid: u32 = uid.parse().expect("a numeric uid, for runAsNonRoot");
        let _: u32 = gid.parse().expect("a numeric gid");
        assert_ne!(uid, 0, "the image runs as root");
        assert!(config["ExposedPorts"].get(port).is_some(), "{config}");
        let env: Vec<&str> = config["Env"]
            .as_array()
            .expect("Env")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            env.contains(&format!("{prefix}_SERVER__HOST=0.0.0.0").as_str()),
            "{env:?}"
        );
        assert_eq!(config["Entrypoint"][0], format!("/usr/local/bin/{service}"));
        let cmd = &config["Cmd"];
        assert_eq!(cmd[0], "--config");
        let shipped = std::fs::read(repo().join(format!("config/{service}.toml"))).unwrap();
        let inside = std::fs::read(image.file(cmd[1].as_str().unwrap()))
            .expect("the image holds the config its Cmd names");
        assert_eq!(
            inside, shipped,
            "the image's config is config/{service}.toml"
        );

        let binary = image.file(&format!("/usr/local/bin/{service}"));
        let loader = image.loader();
        // The loader falls back to the host's libraries for any the image
        // lacks: what it resolves must all be inside the image.
        let listed = run(
            Command::new(&loader[0])
                .arg("--list")
                .args(&loader[1..])
                .arg(&binary),
            "the image's loader",
        );
        for line in listed.lines().filter_map(|l| l.split_once(" => ")) {
            let path = line.1.split(" (").next().unwrap_or("");
            assert!(
                path.starts_with(&*image.root.to_string_lossy()) || path == loader[0],
                "{service} loads {path} from outside its image:\n{listed}"
            );
        }
        let version = run(
            Command::new(&loader[0])
                .args(&loader[1..])
                .arg(&binary)
                .arg("--version"),
            "the image's loader",
        );
        assert_eq!(
            version,
            format!("{service} {}\n", env!("CARGO_PKG_VERSION"))
        );
        unpacked.push(image);
    }

    let [a_image, b_image] = &unpacked[..] else {
        unreachable!()
    };
    let run_from = |image: &Unpacked, service: &str| {
        let loader = image.loader();
        let words: Vec<&str> = loader.iter().map(String::as_str).collect();
        let config =
            std::fs::read_to_string(image.file(&format!("/etc/{service}/{service}.toml"))).unwrap();
        Launch::new(image.file(&format!("/usr/local/bin/{service}")), &config).wrapped(&words)
    };
    let a = run_from(a_image, "service-a")
        .env("SERVICE_A_SERVER__PORT", "0")
        .start();
    let health = get(&format!("{}/health", a.url));
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );

    let b = run_from(b_image, "service-b")
        .env("SERVICE_B_SERVER__PORT", "0")
        .env("SERVICE_B_UPSTREAM__URL", &a.url)
        .start();
    let echoed = get(&format!("{}/call-echo?msg=from-the-image", b.url));
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    assert_eq!(echoed.json()["service_a"]["echo"], "from-the-image");
    drop(images);
}

/// A fresh folder under the target dir's tmp, removed at the start of the next run.
fn tempfile_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("image-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
