//! The shim's `oci-start <container dir>`: the same supervisor for a runc container. It
//! becomes a child subreaper, runs `runc create` with the log pipes as the container's
//! stdio, so the container's first process is reparented to it when `runc create` exits,
//! then `runc start`; from there it is the `process` runtime's shim: it copies output into
//! the rotated CRI log, reaps the process and writes `exit.json` (OOM kills from the
//! container's memory cgroup, which runc keeps until `runc delete`).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use nix::sys::wait::waitpid;
use nix::unistd::{chdir, setsid, Pid};

use super::{pipe, proc_stat, report, supervise, Report, Supervised, START_FAILED};
use crate::oci::{runc_error, OciPlan, INIT_PID, OCI_PLAN, RUNC_LOG};
use crate::state::{self, write_json};
use crate::status::{ExitRecord, StartedRecord};

pub(super) fn start(dir: &Path) -> Result<(), String> {
    let _ = setsid();
    let _ = chdir("/");
    let plan: OciPlan = state::read_json(&dir.join(OCI_PLAN))
        .map_err(|e| e.to_string())?
        .ok_or("no oci.json")?;
    // The container's first process is runc's grandchild: once `runc create` exits it is
    // reparented here, so this shim reaps it and sees its exit status.
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("subreaper: {e}"))?;
    let runc_log = dir.join(RUNC_LOG);
    let runc = |args: &[&str]| {
        let mut c = Command::new(&plan.runc);
        c.arg("--root")
            .arg(&plan.runc_root)
            .arg("--log")
            .arg(&runc_log)
            .arg("--log-format")
            .arg("json")
            .args(args);
        c
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let pid_file = dir.join(INIT_PID);
    let id = plan.id.as_str();
    let bundle = dir.to_string_lossy().to_string();
    let pid_arg = pid_file.to_string_lossy().to_string();
    let created = runc(&["create", "--bundle", &bundle, "--pid-file", &pid_arg, id])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status()
        .map_err(|e| format!("spawn {}: {e}", plan.runc.display()))?;
    if !created.success() {
        let reason = runc_error(&runc_log).unwrap_or_else(|| format!("runc create: {created}"));
        return failed(dir, reason);
    }
    let Some(pid) = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        let _ = runc(&["delete", "--force", id])
            .stdout(Stdio::null())
            .status();
        return failed(
            dir,
            format!("runc create wrote no pid to {}", pid_file.display()),
        );
    };
    let child = Pid::from_raw(pid);
    let started = runc(&["start", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("spawn {}: {e}", plan.runc.display()))?;
    if !started.success() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(child, None);
        let reason = runc_error(&runc_log).unwrap_or_else(|| format!("runc start: {started}"));
        return failed(dir, reason);
    }
    let me = nix::unistd::getpid().as_raw();
    let record = StartedRecord {
        pid,
        pid_start_ticks: proc_stat(pid).map(|s| s.1).unwrap_or(0),
        shim_pid: me,
        shim_start_ticks: proc_stat(me).map(|s| s.1).unwrap_or(0),
        started_at: SystemTime::now(),
    };
    write_json(&dir.join(state::STARTED), &record).map_err(|e| e.to_string())?;
    report(&Report {
        pid: Some(pid),
        error: None,
    });
    let supervised = Supervised {
        log_path: &plan.log_path,
        log_max_size: plan.log_max_size,
        log_max_files: plan.log_max_files,
        // The PID namespace ends the rest of the container with its first process.
        kill_group: false,
        cgroup: Some(&plan.cgroup),
    };
    supervise(dir, &supervised, child, out_r, err_r)
}

/// Records a start that never ran the command and reports it.
fn failed(dir: &Path, reason: String) -> Result<(), String> {
    let exit = ExitRecord {
        exit_code: START_FAILED,
        signal: None,
        finished_at: SystemTime::now(),
        oom_kills: 0,
        start_error: Some(reason.clone()),
    };
    write_json(&dir.join(state::EXIT), &exit).map_err(|e| e.to_string())?;
    report(&Report {
        pid: None,
        error: Some(reason),
    });
    // What runc left of the container goes with `remove` (`runc delete --force`).
    Ok(())
}
