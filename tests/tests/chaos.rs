//! The chaos suite in CI: `navctl chaos run` with two minutes of every fault family against
//! three masters and two node agents it starts itself on loopback, which must end with zero
//! violations, every family injected and every Deployment converged; its refusals of bad
//! flags; and `navctl chaos sim`, the simulation's explorer.

use std::process::Command;

use anyhow::{Context, Result};
use navarch_tests::bin;
use serde_json::Value;

/// The seed CI replays (override with NAVARCH_CHAOS_SEED to explore others).
const SEED: &str = "13";

#[test]
fn two_minutes_of_faults_lose_nothing_and_the_cluster_heals() -> Result<()> {
    let seed = std::env::var("NAVARCH_CHAOS_SEED").unwrap_or_else(|_| SEED.to_string());
    let dir = tempfile::tempdir()?;
    let out = Command::new(bin("navctl"))
        .args([
            "chaos",
            "run",
            "--duration",
            "2m",
            "--seed",
            &seed,
            "--json",
        ])
        .args(["--cluster-cidr", "10.42.176.0/20"])
        .args(["--service-cluster-ip-range", "10.43.176.0/24"])
        .args(["--node-prefix", "ci-chaos-", "--dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .context("run navctl chaos run")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(&stdout).with_context(|| {
        format!("the chaos report is not JSON (seed {seed}):\n{stdout}\n{stderr}")
    })?;
    let violations = report["violations"].as_array().context("violations")?;
    assert!(
        violations.is_empty(),
        "seed {seed}: {violations:#?}\n{stderr}"
    );
    assert!(out.status.success(), "seed {seed}: {stderr}");
    // The run did what it says: every family of faults, a real workload, a real check.
    for kind in ["actors", "kill", "pause", "partition", "delay"] {
        let n = report["faults"][kind].as_u64().unwrap_or(0);
        assert!(
            n >= 1,
            "no {kind} fault injected in two minutes: {report:#}"
        );
    }
    assert!(
        report["register_operations"].as_u64() > Some(500),
        "{report:#}"
    );
    assert!(
        report["register_writes_acknowledged"].as_u64() > Some(200),
        "{report:#}"
    );
    assert!(
        report["appends_acknowledged"].as_u64() > Some(100),
        "{report:#}"
    );
    assert!(report["watch_events"].as_u64() > Some(300), "{report:#}");
    assert!(
        report["deployments_rolled_out"].as_u64() > Some(0),
        "{report:#}"
    );
    assert!(report["converge_seconds"].is_number(), "{report:#}");
    // Every killed actor and restarted process came back.
    for (kind, r) in report["recoveries"].as_object().context("recoveries")? {
        assert_eq!(r["not_recovered"], 0, "{kind}: {r}");
    }
    Ok(())
}

#[test]
fn bad_flags_are_refused_before_anything_starts() -> Result<()> {
    let run = |args: &[&str]| -> Result<(bool, String)> {
        let out = Command::new(bin("navctl"))
            .args(["chaos", "run"])
            .args(args)
            .output()
            .context("run navctl chaos run")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (ok, err) = run(&["--duration", "0s"])?;
    assert!(!ok);
    assert!(
        err.contains("--duration must be between 1s and 24h"),
        "{err}"
    );
    let (ok, err) = run(&["--duration", "2 minutes"])?;
    assert!(!ok);
    assert!(err.contains("the unit must be s, m or h"), "{err}");
    let (ok, err) = run(&["--faults", "kill,meteor"])?;
    assert!(!ok);
    assert!(err.contains("invalid value 'meteor'"), "{err}");
    let (ok, err) = run(&["--node-prefix", "Bad_Name"])?;
    assert!(!ok);
    assert!(err.contains("--node-prefix \"Bad_Name\" must be"), "{err}");
    // --plan prints the schedule a seed draws, the same each time, and starts nothing.
    let plan = |seed: &str| -> Result<String> {
        let out = Command::new(bin("navctl"))
            .args(["chaos", "run", "--duration", "1m", "--plan", "--seed", seed])
            .output()?;
        assert!(out.status.success());
        Ok(String::from_utf8(out.stdout)?)
    };
    let (ok, err) = run(&["--gap", "0s"])?;
    assert!(!ok);
    assert!(err.contains("--gap must be between 1s and 1h"), "{err}");
    let a = plan("5")?;
    assert_eq!(a, plan("5")?);
    assert_ne!(a, plan("6")?);
    assert!(a.lines().count() >= 5, "{a}");
    Ok(())
}

#[test]
fn the_simulation_command_explores_schedules_and_names_its_seed() -> Result<()> {
    let out = Command::new(bin("navctl"))
        .args(["chaos", "sim", "--seed", "11", "--schedules", "100"])
        .output()
        .context("run navctl chaos sim")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("100 schedules from seed 11: "),
        "{stdout}"
    );
    assert!(stdout.contains("no invariant broken"), "{stdout}");
    let out = Command::new(bin("navctl"))
        .args(["chaos", "sim", "--schedules", "0"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schedules must be between 1"));
    Ok(())
}
