//! Where the server and the load generator run. On one box they share the
//! cores, and a generator that takes the server's core makes the server
//! look slower than it is: with two or more cores the server gets the
//! first alone and the generator the rest, so that the server's CPU per
//! delivery is its own, and the generator's is reported beside it.

use std::sync::OnceLock;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The cores each side runs on.
#[derive(Debug, Clone)]
pub struct Pinning {
    pub server: Vec<usize>,
    pub generator: Vec<usize>,
}

static PLAN: OnceLock<Option<Pinning>> = OnceLock::new();

/// Pins this process (before its runtime starts, so every thread it makes
/// inherits the mask) and remembers where the server goes. Nothing is
/// pinned on a one-core machine or when `off`.
pub fn apply(off: bool) -> Option<&'static Pinning> {
    let plan = PLAN.get_or_init(|| {
        let cores = allowed();
        if off || cores.len() < 2 {
            return None;
        }
        let plan = Pinning { server: cores[..1].to_vec(), generator: cores[1..].to_vec() };
        match set(Pid::from_raw(0), &plan.generator) {
            Ok(()) => Some(plan),
            Err(e) => {
                eprintln!("kith-bench: not pinning ({e}); server and generator share the cores");
                None
            }
        }
    });
    plan.as_ref()
}

/// The plan, if one was applied.
pub fn plan() -> Option<&'static Pinning> {
    PLAN.get().and_then(Option::as_ref)
}

/// Moves every thread of the server process `pid` to the server's cores.
/// Called once it has announced itself: its runtime's threads exist by
/// then, and any it makes later inherit the mask of the thread making it.
pub fn server(pid: u32) -> std::io::Result<()> {
    let Some(plan) = plan() else { return Ok(()) };
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = task?.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
        set(Pid::from_raw(tid), &plan.server)?;
    }
    Ok(())
}

/// The cores this process may run on.
fn allowed() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else { return Vec::new() };
    (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

/// Restricts the thread `tid` (0: the calling one) to `cores`.
fn set(tid: Pid, cores: &[usize]) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    for &c in cores {
        set.set(c).map_err(std::io::Error::from)?;
    }
    sched_setaffinity(tid, &set).map_err(std::io::Error::from)
}

/// One line saying where things ran, for the report.
pub fn describe() -> String {
    match plan() {
        Some(p) => format!("server on core {:?}, load generator on cores {:?}", p.server, p.generator),
        None => "server and load generator share every core (not pinned)".into(),
    }
}
