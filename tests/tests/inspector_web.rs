//! The inspector's web page in a real headless browser (Debian's `chromium`): a single server
//! with its node, the page served at `/debug/inspector` (cluster administrators only) and
//! reached the Kubernetes way, through the real `kubectl proxy` with the admin kubeconfig. A
//! Deployment applied with kubectl and the scheduler killed once, the Deployment's trace
//! opened by the page's URL fragment: the page shows the master's and the node's supervision
//! trees (the scheduler's restart marked), which master's control plane is active, the
//! masters' leases, and a sequence diagram whose lanes
//! span the master process and the node process, from the Deployment's actor through the
//! ReplicaSet's and the scheduler to the pod's actor on the node. A screenshot is kept as
//! `inspector.png` (with the page's DOM as `inspector.html`) in `$NAVARCH_ARTIFACTS` (default
//! `$CARGO_TARGET_DIR/test-artifacts`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_tests::{bin, https_client, kubectl_bin, wait_for, Cluster, Kubectl};

const NODE: &str = "webinspected";
const DEPLOYMENT: &str = "inspected-web";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Virtual time the browser gives the page before dumping or capturing it: the page's first
/// reads finish and its refreshes run (virtual time stands still while a fetch is in flight).
const PAGE_BUDGET_MS: u32 = 8000;

/// `kubectl proxy` in the background; killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    /// Starts `kubectl proxy --port=0` with `kc`'s kubeconfig and waits for the port it
    /// serves on.
    async fn start(kc: &Kubectl) -> Result<Proxy> {
        let mut child = Command::new(kubectl_bin()?)
            .args(["proxy", "--port=0", "--address=127.0.0.1"])
            .env("KUBECONFIG", &kc.kubeconfig)
            .env("HOME", &kc.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn kubectl proxy")?;
        let stdout = child.stdout.take().context("kubectl proxy stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut proxy = Proxy { child, port: 0 };
        // "Starting to serve on 127.0.0.1:PORT"
        proxy.port = wait_for(Duration::from_secs(30), "kubectl proxy's port", || {
            let got = rx
                .try_recv()
                .ok()
                .and_then(|l| l.rsplit_once(':').and_then(|(_, p)| p.trim().parse().ok()));
            async move { got }
        })
        .await?;
        Ok(proxy)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where test artifacts go: `$NAVARCH_ARTIFACTS`, else `$CARGO_TARGET_DIR/test-artifacts`,
/// else `test-artifacts` in the target dir the binaries were built in.
fn artifacts_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NAVARCH_ARTIFACTS") {
        return PathBuf::from(d);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        // target/<profile>/navctl -> target
        None => bin("navctl")
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir),
    };
    target.join("test-artifacts")
}

/// Runs headless chromium on `url` with `mode` (`--dump-dom`, or `--screenshot=...`) and a
/// profile of its own; its stdout.
async fn chromium(profile: &Path, url: &str, mode: &str) -> Result<String> {
    anyhow::ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/install-deps.sh (Debian's chromium)"
    );
    let run = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1600,2200",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--virtual-time-budget={PAGE_BUDGET_MS}"),
            mode,
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .context("chromium did not finish within 90s")?
        .context("run chromium")?;
    if !out.status.success() {
        bail!(
            "chromium {mode} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The text from `open` to the next `until` after it (or to the end): the part of the page
/// one check looks at.
fn section<'a>(dom: &'a str, open: &str, until: &str) -> Option<&'a str> {
    let start = dom.find(open)?;
    let rest = &dom[start..];
    let end = rest[open.len()..]
        .find(until)
        .map_or(rest.len(), |e| e + open.len());
    Some(&rest[..end])
}

/// What the page must show once it has read the cluster: both trees, and the trace with lanes
/// in the master and the node process; `None` (with what is still missing) until then.
fn check_page(dom: &str, id: &str) -> std::result::Result<(), String> {
    let trace =
        section(dom, "<section id=\"trace\"", "<section id=\"trees\"").ok_or("no trace section")?;
    let node = format!("node/{NODE}");
    let wants = [
        format!("data-trace=\"{id}\""),
        "data-state=\"ready\"".to_string(),
        "class=\"process-band\" data-process=\"m1\"".to_string(),
        format!("class=\"process-band\" data-process=\"{node}\""),
        format!(
            "class=\"lane\" data-process=\"m1\" data-actor=\"/master/m1/controllers/deployment/default/{DEPLOYMENT}\""
        ),
        format!(
            "class=\"lane\" data-process=\"m1\" data-actor=\"/master/m1/controllers/replicaset/default/{DEPLOYMENT}-"
        ),
        "class=\"lane\" data-process=\"m1\" data-actor=\"/master/m1/controllers/scheduler\""
            .to_string(),
        format!("class=\"lane\" data-process=\"{node}\" data-actor=\"/node/{NODE}/"),
        // The pod's own actor on the node, under the kubelet.
        format!("/{DEPLOYMENT}-"),
    ];
    let processes = section(trace, "data-processes=\"", "\" ")
        .map(|p| p.trim_start_matches("data-processes=\""))
        .unwrap_or("");
    let mut processes: Vec<&str> = processes.split(',').collect();
    processes.sort();
    if processes != ["m1", node.as_str()] {
        return Err(format!("the trace spans {processes:?}, not m1 and {node}"));
    }
    for w in &wants {
        if !trace.contains(w.as_str()) {
            return Err(format!("the trace lacks {w}"));
        }
    }
    let pod_lane = trace
        .split("class=\"lane\"")
        .any(|l| l.contains(&format!("data-actor=\"/node/{NODE}/")) && l.contains(DEPLOYMENT));
    if !pod_lane {
        return Err("no lane of the pod's actor on the node".into());
    }
    let trees = section(dom, "<section id=\"trees\"", "<section id=\"messages\"")
        .ok_or("no trees section")?;
    let master_tree = section(
        trees,
        "class=\"process\" data-process=\"m1\"",
        "class=\"process",
    )
    .ok_or("no tree of master m1")?;
    for p in [
        "data-path=\"/master/m1/controllers\"",
        "data-path=\"/master/m1/controllers/scheduler\"",
    ] {
        if !master_tree.contains(p) {
            return Err(format!("the master's tree lacks {p}"));
        }
    }
    let node_tree = section(
        trees,
        &format!("class=\"process\" data-process=\"{node}\""),
        "</table>",
    )
    .ok_or("no tree of the node")?;
    if !node_tree.contains(&format!("data-path=\"/node/{NODE}/kubelet")) {
        return Err("the node's tree lacks its kubelet".into());
    }
    // The scheduler the test killed: restarted, its count shown as a restart.
    let scheduler = master_tree
        .split("<tr ")
        .find(|r| r.contains("data-path=\"/master/m1/controllers/scheduler\""))
        .ok_or("no scheduler row")?;
    if !(scheduler.contains("has-restarts") && scheduler.contains("data-restarts=\"1\"")) {
        return Err(format!("the scheduler's row shows no restart: {scheduler}"));
    }
    if !dom.contains("data-master=\"m1\"")
        || !dom.contains("control plane <span class=\"active\">active")
    {
        return Err("the header does not say m1's control plane is active".into());
    }
    if !dom.contains("data-member=\"m1\"") {
        return Err("the masters table does not list m1's lease".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_page_shows_a_deployments_trace_across_master_and_node() -> Result<()> {
    let flags = [
        "--cluster-cidr",
        "10.42.144.0/20",
        "--service-cluster-ip-range",
        "10.43.144.0/24",
        "--disk-pressure-percent",
        "1",
    ];
    let mut cluster = Cluster::single_server(NODE, &flags).await?;
    let kc = Kubectl::admin(&cluster, 0, cluster.dir.path()).await?;

    // The page is for cluster administrators only, like every /debug path.
    let page = cluster.url(0, "/debug/inspector");
    let nobody = https_client(&cluster.identity("nobody", &[])?)?;
    let r = nobody.get(&page).send().await?;
    assert_eq!(r.status().as_u16(), 403, "a user with no role");
    let r = cluster.http().get(&page).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = r.text().await?;
    assert!(html.contains("<title>navarch inspector</title>"), "{html}");

    // A Deployment through kubectl; its pod running on the node; its trace id from the
    // annotation its request left.
    let mut deployment = navarch_tests::httpd_deployment(DEPLOYMENT, 1, 8080);
    deployment["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .context("container")?
        .remove("readinessProbe");
    kc.apply(&deployment)?.expect_ok("kubectl apply")?;
    wait_for(
        Duration::from_secs(90),
        "the deployment's pod running",
        || async {
            let pods = kc
                .json(&["get", "pods", "-l", &format!("app={DEPLOYMENT}")])
                .ok()?;
            let p = pods["items"].as_array()?.first()?.clone();
            (p["status"]["phase"] == "Running").then_some(())
        },
    )
    .await?;
    let d = kc.json(&["get", "deploy", DEPLOYMENT])?;
    let id = d["metadata"]["annotations"]["navarch.io/correlation-id"]
        .as_str()
        .context("the deployment has no navarch.io/correlation-id")?
        .to_string();

    // A restart for the page to show: the kill switch on the scheduler, which its
    // supervisor restarts.
    let r = cluster
        .http()
        .post(cluster.url(0, "/debug/kill?path=/master/m1/controllers/scheduler"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await?);

    // The browser reaches the API through kubectl proxy, which presents the admin's
    // certificate; the page asks only relative paths, so it works behind the proxy.
    let proxy = Proxy::start(&kc).await?;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = plain.get(proxy.url("/debug/inspector")).send().await?;
    assert_eq!(r.status().as_u16(), 200, "the page through kubectl proxy");

    let url = proxy.url(&format!("/debug/inspector#trace={id}"));
    let profile = cluster.dir.path().join("chromium-profile");
    let last = std::sync::Mutex::new(String::new());
    let dom = wait_for(
        Duration::from_secs(120),
        "the page to show the trees and the trace",
        || async {
            let dom = match chromium(&profile, &url, "--dump-dom").await {
                Ok(d) => d,
                Err(e) => {
                    *last.lock().unwrap() = format!("{e:#}");
                    return None;
                }
            };
            match check_page(&dom, &id) {
                Ok(()) => Some(dom),
                Err(why) => {
                    *last.lock().unwrap() = format!("{why}\n{}", &dom[..dom.len().min(4000)]);
                    None
                }
            }
        },
    )
    .await
    .with_context(|| format!("last look: {}", last.lock().unwrap()))?;
    assert!(
        dom.contains("data-ready=\"true\""),
        "the page finished its first reads"
    );

    // A screenshot of the same view, kept as an artifact.
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("inspector.html"), &dom)?;
    let shot = dir.join("inspector.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&profile, &url, &format!("--screenshot={}", shot.display())).await?;
    let png = std::fs::read(&shot).with_context(|| format!("read {}", shot.display()))?;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into()?);
    let height = u32::from_be_bytes(png[20..24].try_into()?);
    assert!(width >= 800 && height >= 600, "{width}x{height}");
    // A blank page compresses to a few kilobytes; one with tables and a diagram does not.
    assert!(png.len() > 30_000, "{} bytes", png.len());
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());

    drop(proxy);
    cluster.passed();
    Ok(())
}
