//! The container image: the top-level Dockerfile, built exactly as users build it, with its two
//! base images passed as arguments because nothing can be pulled here. The test makes them
//! locally from a Debian rootfs (`debootstrap`, then `docker import`):
//!
//! - a runtime base like distroless/cc: only glibc, libgcc, CA certificates, a passwd with the
//!   non-root user 65532 and /tmp — no shell, no package manager;
//! - a builder base: the rootfs with gcc, plus this machine's Rust toolchain and its cargo
//!   registry cache (the build runs offline).
//!
//! Then `stratum-hub` runs in a container on a private Docker network, with a simulated pool on
//! the host (reached through the network's gateway) and simulated miners on the host (through
//! the published stratum port): shares must flow to the pool and `/metrics` must answer. The
//! image's size and build time are printed.
//!
//! It takes minutes (debootstrap, a release build in the container), so it is ignored by default;
//! `.ci/run` runs it when a Docker engine is present:
//! `cargo test -p hashsched-tests --test container_image -- --ignored --nocapture`.
//! Without an engine it fails saying so (it only runs when asked for).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hashsched_hub::admin::client::request;
use hashsched_hub::metrics::{HUB_CONNECTIONS, POOL_SHARES_TOTAL};
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};

const RUNTIME_BASE: &str = "hashsched-test/runtime-base:bookworm";
const BUILDER_BASE: &str = "hashsched-test/rust-builder:bookworm";
const IMAGE: &str = "hashsched-test/hashsched:it";
const DEADLINE: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).trim().to_owned()
}

fn docker() -> Command {
    Command::new("docker")
}

fn image_exists(tag: &str) -> bool {
    docker()
        .args(["image", "inspect", tag])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Where the rootfs is kept between runs (debootstrap takes a minute or two).
fn work_dir() -> PathBuf {
    let d = std::env::var_os("HASHSCHED_IMAGE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("container-image"));
    std::fs::create_dir_all(&d).expect("work dir");
    d
}

/// A Debian bookworm rootfs with gcc (the linker rustc needs) and CA certificates.
fn rootfs() -> PathBuf {
    let root = work_dir().join("rootfs");
    if root.join("usr/bin/gcc").exists() && root.join("etc/ssl/certs/ca-certificates.crt").exists()
    {
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    let t = Instant::now();
    run(Command::new("debootstrap").args([
        "--variant=minbase",
        "--include=ca-certificates,gcc,libc6-dev",
        "bookworm",
        root.to_str().expect("utf-8 path"),
        "http://deb.debian.org/debian",
    ]));
    eprintln!("debootstrap: {:.0} s", t.elapsed().as_secs_f64());
    root
}

/// Copies `rel` from the rootfs into `stage`, following symlinks for the file itself.
fn stage_file(root: &Path, stage: &Path, rel: &str) {
    let src = root.join(rel);
    let dst = stage.join(rel);
    std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
}

fn import(dir: &Path, tag: &str, changes: &[&str]) {
    let mut cmd = Command::new("sh");
    let mut import = format!("tar -C '{}' -c . | docker import", dir.display());
    for c in changes {
        import.push_str(&format!(" --change '{c}'"));
    }
    import.push_str(&format!(" - {tag}"));
    cmd.args(["-c", &import]);
    run(&mut cmd);
}

/// distroless/cc in spirit: the shared libraries a Rust binary links, CA certificates, users.
fn make_runtime_base(root: &Path) {
    let stage = work_dir().join("runtime-stage");
    let _ = std::fs::remove_dir_all(&stage);
    for lib in [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
    ] {
        stage_file(root, &stage, &format!("usr/lib/x86_64-linux-gnu/{lib}"));
    }
    stage_file(
        root,
        &stage,
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    );
    stage_file(root, &stage, "etc/ssl/certs/ca-certificates.crt");
    // Debian's merged /usr: the ELF interpreter path /lib64/ld-linux-x86-64.so.2 resolves there.
    std::fs::create_dir_all(stage.join("usr/lib64")).expect("mkdir");
    std::os::unix::fs::symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        stage.join("usr/lib64/ld-linux-x86-64.so.2"),
    )
    .expect("symlink");
    for (link, to) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(to, stage.join(link)).expect("symlink");
    }
    std::fs::create_dir_all(stage.join("etc")).unwrap();
    std::fs::write(
        stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(stage.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    for d in ["tmp", "home/nonroot", "usr/local/bin"] {
        std::fs::create_dir_all(stage.join(d)).unwrap();
    }
    run(Command::new("chmod").args(["1777", stage.join("tmp").to_str().unwrap()]));
    run(Command::new("chown").args(["65532:65532", stage.join("home/nonroot").to_str().unwrap()]));
    import(&stage, RUNTIME_BASE, &[]);
}

/// The rootfs plus this machine's Rust toolchain and cargo registry (the build runs offline).
fn make_builder_base(root: &Path) {
    let sysroot = stdout(Command::new("rustc").args(["--print", "sysroot"]));
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").expect("HOME")));
    let rust = root.join("usr/local/rust");
    let registry = root.join("usr/local/cargo/registry");
    let _ = std::fs::remove_dir_all(&rust);
    let _ = std::fs::remove_dir_all(root.join("usr/local/cargo"));
    std::fs::create_dir_all(&rust).unwrap();
    std::fs::create_dir_all(&registry).unwrap();
    for part in ["bin", "lib"] {
        run(Command::new("cp").args(["-a", &format!("{sysroot}/{part}"), rust.to_str().unwrap()]));
    }
    for part in ["index", "cache"] {
        run(Command::new("cp").args([
            "-a",
            &format!("{cargo_home}/registry/{part}"),
            registry.to_str().unwrap(),
        ]));
    }
    import(
        root,
        BUILDER_BASE,
        &[
            "ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV CARGO_HOME=/usr/local/cargo",
            "ENV CARGO_NET_OFFLINE=true",
        ],
    );
}

fn engine_available() -> bool {
    docker()
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes the test's containers and network however the test ends.
struct Cleanup {
    containers: Vec<String>,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker().args(["rm", "-f", c]).output();
        }
        let _ = docker().args(["network", "rm", &self.network]).output();
    }
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + DEADLINE;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sum of the samples of metric `name` in a /metrics body.
fn metric(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "builds the image (debootstrap and a release build in a container, minutes); .ci/run runs it when a Docker engine is present"]
async fn the_image_builds_and_its_hub_forwards_shares_on_a_private_network() {
    assert!(
        engine_available(),
        "no Docker engine answers `docker version`: this test needs one (it was asked for explicitly)"
    );
    // Base images (cached between runs; delete them to rebuild).
    if !image_exists(RUNTIME_BASE) || !image_exists(BUILDER_BASE) {
        assert_eq!(
            stdout(Command::new("id").arg("-u")),
            "0",
            "making the base images needs root (debootstrap, a rootfs owned by root): run this test as root once"
        );
        let t = Instant::now();
        let root = rootfs();
        make_runtime_base(&root);
        make_builder_base(&root);
        eprintln!("base images made in {:.0} s", t.elapsed().as_secs_f64());
    }

    // The Dockerfile users build, with the local bases. HASHSCHED_IMAGE_TEST_REUSE=1 reuses an
    // image an earlier run built (for iterating on the rest of this test; CI never sets it).
    let reuse = std::env::var_os("HASHSCHED_IMAGE_TEST_REUSE").is_some() && image_exists(IMAGE);
    if reuse {
        eprintln!("REUSING the image {IMAGE} of an earlier run: the Dockerfile was NOT built now");
    }
    let t = Instant::now();
    if !reuse {
        run(docker().current_dir(repo()).args([
            "build",
            "--build-arg",
            &format!("BUILDER_IMAGE={BUILDER_BASE}"),
            "--build-arg",
            &format!("RUNTIME_IMAGE={RUNTIME_BASE}"),
            "-t",
            IMAGE,
            ".",
        ]));
    }
    let build_secs = t.elapsed().as_secs_f64();
    let size: f64 = stdout(docker().args(["image", "inspect", "--format", "{{.Size}}", IMAGE]))
        .parse()
        .expect("size");
    let base_size: f64 =
        stdout(docker().args(["image", "inspect", "--format", "{{.Size}}", RUNTIME_BASE]))
            .parse()
            .expect("size");
    eprintln!(
        "image {IMAGE}: built in {build_secs:.0} s, {:.1} MB ({:.1} MB runtime base + {:.1} MB binaries)",
        size / 1e6,
        base_size / 1e6,
        (size - base_size) / 1e6
    );
    let user = stdout(docker().args(["image", "inspect", "--format", "{{.Config.User}}", IMAGE]));
    assert_eq!(
        user, "65532:65532",
        "the image must run as the non-root user"
    );
    let labels = stdout(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        IMAGE,
    ]));
    for l in [
        "org.opencontainers.image.source",
        "org.opencontainers.image.version",
        "org.opencontainers.image.licenses",
    ] {
        assert!(labels.contains(l), "OCI label {l} missing: {labels}");
    }
    let entry = stdout(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}}",
        IMAGE,
    ]));
    assert_eq!(entry, "[\"/usr/local/bin/stratum-hub\"]");
    // Both binaries run in the runtime base (their libraries are there); no shell is.
    let help = stdout(docker().args(["run", "--rm", IMAGE, "--help"]));
    assert!(help.contains("--pool"), "{help}");
    let help = stdout(docker().args([
        "run",
        "--rm",
        "--entrypoint",
        "/usr/local/bin/hashsched",
        IMAGE,
        "--help",
    ]));
    assert!(help.contains("local"), "{help}");
    let shell = docker()
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            IMAGE,
            "-c",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!shell.status.success(), "the runtime image has a shell");

    // A private network; the simulated pool listens on the host at the network's gateway.
    let network = format!("hashsched-it-{}", std::process::id());
    let mut cleanup = Cleanup {
        containers: vec![],
        network: network.clone(),
    };
    run(docker().args(["network", "create", &network]));
    let gateway = stdout(docker().args([
        "network",
        "inspect",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
        &network,
    ]));
    let pool = SimPool::start_on(
        format!("{gateway}:0").parse().expect("gateway address"),
        PoolConfig {
            name: "pool".into(),
            difficulty: 2e-4,
            record_shares: false,
            ..PoolConfig::default()
        },
    )
    .await
    .expect("pool on the gateway address");
    let hub = format!("hashsched-it-hub-{}", std::process::id());
    cleanup.containers.push(hub.clone());
    run(docker().args([
        "run",
        "-d",
        "--name",
        &hub,
        "--network",
        &network,
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "-p",
        "127.0.0.1::3333",
        "-p",
        "127.0.0.1::9100",
        IMAGE,
        "--listen",
        "0.0.0.0:3333",
        "--metrics",
        "0.0.0.0:9100",
        "--pool",
        &pool.url(),
        "--user",
        "farm",
        // Simulated miners hash ~200 kH/s: start them at a difficulty they meet at once.
        "--initial-difficulty",
        "0.0001",
        "--share-interval",
        "1s",
    ]));
    let port = |p: &str| -> SocketAddr {
        let s = stdout(docker().args(["port", &hub, p]));
        s.lines()
            .next()
            .expect("published port")
            .parse()
            .expect("addr")
    };
    let stratum = port("3333/tcp");
    let metrics = port("9100/tcp");
    wait_for("the hub's /metrics answers", || async move {
        request(metrics, "GET", "/metrics", None, b"")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    let miners: Vec<SimMiner> = (1..=3)
        .map(|i| {
            SimMiner::spawn(
                stratum,
                MinerConfig {
                    hashrate: Some(200e3),
                    record_shares: false,
                    ..MinerConfig::new(format!("rig-{i}"))
                },
            )
        })
        .collect();
    let pool_ref = &pool;
    let miners_ref = &miners;
    wait_for(
        "the pool accepts shares from every miner through the containerised hub",
        || async move {
            pool_ref.stats().accepted_total() >= 10
                && miners_ref.iter().all(|m| m.stats().accepted > 0)
        },
    )
    .await;
    let body = request(metrics, "GET", "/metrics", None, b"")
        .await
        .unwrap()
        .body;
    assert!(metric(&body, POOL_SHARES_TOTAL) > 0.0, "{body}");
    assert_eq!(metric(&body, HUB_CONNECTIONS), 3.0, "{body}");
    for i in 1..=3 {
        assert!(body.contains(&format!("worker=\"rig-{i}\"")), "{body}");
    }
    eprintln!(
        "hub in a container: {} shares accepted by the pool on the host",
        pool.stats().accepted_total()
    );
    drop(cleanup);
}
