//! `cargo xtask check-layers`: reads `cargo metadata` and fails when a
//! workspace crate depends on one its layer must not.
//!
//! The layers, from the bottom (each crate's top `//!` comment says the
//! same for itself):
//!
//! | layer | crates | may depend on (normal and build) |
//! |---|---|---|
//! | abi | `ipc` | nothing in the workspace |
//! | boot | `boot` | nothing in the workspace |
//! | kernel | `kernel` | abi, boot |
//! | service library | `services/<name>` | abi (its tests: also boot and other service libraries, to run services together on the host) |
//! | service task | `services/<name>/task` | abi, runtime, its own service library |
//! | runtime | `user/rt`, `user/task-build` | abi |
//! | management library | `user/mgmt` | abi, vm-manager's validated names |
//! | user task | other `user/<name>` built for Mica | abi, runtime, management library |
//! | host CLI | `user/cli` | abi, management library, vm-manager's validated names |
//! | test guest | `tests/guests/<name>` | other test guests (their tests: service libraries) |
//! | test driver | `tests` | boot (its tests: abi too) |
//! | tool | `xtask`, `fuzz-targets` | anything |
//!
//! Nothing depends on a tool, the test driver or a test guest except those
//! of the same layer. The kernel never depends on a service or user crate:
//! ABI the kernel shares with a service lives in `ipc`. Services talk to
//! each other only over IPC, so a service never links another service's
//! library (vm-manager's names are the one library type the management
//! front ends share, for the same validation on both sides of the wire).

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::cmd::{self, cargo};

/// Where a crate sits in Mica's layering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Abi,
    Boot,
    Kernel,
    ServiceLibrary,
    ServiceTask,
    Runtime,
    ManagementLibrary,
    UserTask,
    HostCli,
    TestGuest,
    TestDriver,
    Tool,
}

/// How a dependency is used: `dev` ones only build tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Build,
    Dev,
}

/// One workspace crate: its package name and its folder relative to the
/// workspace root (`services/ioreq/task`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub dir: String,
}

/// One dependency edge between two workspace crates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: Crate,
    pub to: Crate,
    pub kind: Kind,
}

/// A dependency that must not exist, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub edge: Edge,
    pub rule: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.edge.kind {
            Kind::Normal => "",
            Kind::Build => " (build-dependency)",
            Kind::Dev => " (dev-dependency)",
        };
        write!(
            f,
            "`{}` ({}/) depends on `{}` ({}/){kind}: {}",
            self.edge.from.name, self.edge.from.dir, self.edge.to.name, self.edge.to.dir, self.rule
        )
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`xtask check-layers` takes no arguments (got `{arg}`)"
        ));
    }
    check()
}

/// Reads the workspace's dependency graph and checks every edge.
pub fn check() -> Result<(), String> {
    let output = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .map_err(|error| format!("cannot run cargo metadata: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("cargo metadata printed no JSON: {error}"))?;
    let edges = workspace_edges(&metadata, &cmd::workspace_root())?;
    let violations = violations(&edges);
    if violations.is_empty() {
        println!(
            "xtask: layers: {} workspace dependencies, none forbidden",
            edges.len()
        );
        return Ok(());
    }
    let mut message = format!(
        "{} forbidden dependencies (the rules: xtask/src/layers.rs):",
        violations.len()
    );
    for violation in &violations {
        message.push_str("\n  ");
        message.push_str(&violation.to_string());
    }
    Err(message)
}

/// The edges between workspace crates in `cargo metadata --no-deps` output.
pub fn workspace_edges(metadata: &Value, root: &Path) -> Result<Vec<Edge>, String> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no `packages` list")?;
    let mut crates = Vec::new();
    for package in packages {
        let name = package["name"]
            .as_str()
            .ok_or("cargo metadata: a package has no name")?;
        let manifest = package["manifest_path"]
            .as_str()
            .ok_or("cargo metadata: a package has no manifest_path")?;
        let dir = Path::new(manifest)
            .parent()
            .and_then(|dir| dir.strip_prefix(root).ok())
            .map(|dir| dir.to_string_lossy().into_owned())
            .ok_or_else(|| format!("cargo metadata: `{name}` lies outside {}", root.display()))?;
        crates.push(Crate {
            name: name.to_owned(),
            dir,
        });
    }
    let mut edges = Vec::new();
    for (package, from) in packages.iter().zip(&crates) {
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let Some(to) = crates
                .iter()
                .find(|c| Some(c.name.as_str()) == dependency["name"].as_str())
            else {
                continue;
            };
            let kind = match dependency["kind"].as_str() {
                Some("dev") => Kind::Dev,
                Some("build") => Kind::Build,
                _ => Kind::Normal,
            };
            edges.push(Edge {
                from: from.clone(),
                to: to.clone(),
                kind,
            });
        }
    }
    Ok(edges)
}

/// The layer of the crate in `dir` (relative to the workspace root), or
/// `None` for a folder no rule names yet (itself an error: say where a new
/// crate belongs in this file).
pub fn layer(dir: &str) -> Option<Layer> {
    let parts: Vec<&str> = dir.split('/').collect();
    Some(match parts.as_slice() {
        ["ipc"] => Layer::Abi,
        ["boot"] => Layer::Boot,
        ["kernel"] => Layer::Kernel,
        ["services", _] => Layer::ServiceLibrary,
        ["services", _, "task"] => Layer::ServiceTask,
        ["user", "rt" | "task-build"] => Layer::Runtime,
        ["user", "mgmt"] => Layer::ManagementLibrary,
        ["user", "cli"] => Layer::HostCli,
        ["user", _] => Layer::UserTask,
        ["tests", "guests", _] => Layer::TestGuest,
        ["tests"] => Layer::TestDriver,
        ["xtask" | "fuzz-targets"] => Layer::Tool,
        _ => return None,
    })
}

/// The management front ends share vm-manager's validated name types.
const NAMES_LIBRARY: &str = "services/vm-manager";

/// Why `edge` must not exist, or `None` when it may.
pub fn forbidden(edge: &Edge) -> Option<&'static str> {
    use Layer::*;
    if edge.from == edge.to {
        // A crate's tests enabling its own features.
        return None;
    }
    let (Some(from), Some(to)) = (layer(&edge.from.dir), layer(&edge.to.dir)) else {
        return Some("a crate in a folder no layer names: add it to xtask/src/layers.rs");
    };
    let dev = edge.kind == Kind::Dev;
    let allowed = match from {
        Abi | Boot => false,
        Kernel => matches!(to, Abi | Boot),
        ServiceLibrary => matches!(to, Abi) || (dev && matches!(to, Boot | ServiceLibrary)),
        ServiceTask => {
            matches!(to, Abi | Runtime)
                || (to == ServiceLibrary && edge.from.dir == format!("{}/task", edge.to.dir))
        }
        Runtime => matches!(to, Abi),
        ManagementLibrary => matches!(to, Abi) || edge.to.dir == NAMES_LIBRARY,
        UserTask => matches!(to, Abi | Runtime | ManagementLibrary),
        HostCli => matches!(to, Abi | ManagementLibrary) || edge.to.dir == NAMES_LIBRARY,
        TestGuest => to == TestGuest || (dev && to == ServiceLibrary),
        TestDriver => to == Boot || (dev && to == Abi),
        Tool => true,
    };
    if allowed {
        return None;
    }
    Some(match from {
        Abi => "ipc is the bottom layer (shared ABI): it depends on no workspace crate",
        Boot => "boot parses boot info for the kernel and tools: it depends on no workspace crate",
        Kernel => {
            "the kernel depends only on ipc and boot: ABI it shares with a service or user task \
             belongs in ipc"
        }
        ServiceLibrary => {
            "a service library depends only on ipc: services talk to each other over IPC \
             (only its tests may link boot or another service library)"
        }
        ServiceTask => "a service task links ipc, the runtime and its own service library only",
        Runtime => "the user runtime depends only on ipc",
        ManagementLibrary => "mica-mgmt depends only on ipc and vm-manager's validated names",
        UserTask => "a user task links ipc, the runtime and mica-mgmt only",
        HostCli => "the host CLI links ipc, mica-mgmt and vm-manager's validated names only",
        TestGuest => {
            "a test guest is standalone: it links only the other test guests' common crate"
        }
        TestDriver => "the test driver links only boot (its tests: ipc too)",
        Tool => "tools may depend on anything",
    })
}

/// Every edge in `edges` that must not exist.
pub fn violations(edges: &[Edge]) -> Vec<Violation> {
    edges
        .iter()
        .filter_map(|edge| {
            forbidden(edge).map(|rule| Violation {
                edge: edge.clone(),
                rule,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(name: &str, dir: &str) -> Crate {
        Crate {
            name: name.to_owned(),
            dir: dir.to_owned(),
        }
    }

    fn edge(from: (&str, &str), to: (&str, &str), kind: Kind) -> Edge {
        Edge {
            from: krate(from.0, from.1),
            to: krate(to.0, to.1),
            kind,
        }
    }

    /// The workspace as it is: no rule fires.
    #[test]
    fn the_workspace_today_keeps_its_layers() {
        let root = cmd::workspace_root();
        let output = cargo()
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .output()
            .expect("cargo metadata runs");
        assert!(output.status.success());
        let metadata: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let edges = workspace_edges(&metadata, &root).expect("edges");
        assert!(edges.len() > 20, "the graph was read: {edges:?}");
        let found = violations(&edges);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn a_kernel_dependency_on_a_service_is_refused() {
        let injected = edge(
            ("mica-kernel", "kernel"),
            ("ioreq", "services/ioreq"),
            Kind::Normal,
        );
        let found = violations(&[injected]);
        assert_eq!(found.len(), 1);
        let message = found[0].to_string();
        assert!(
            message.contains("`mica-kernel` (kernel/) depends on `ioreq`"),
            "{message}"
        );
        assert!(message.contains("belongs in ipc"), "{message}");
    }

    #[test]
    fn a_kernel_dependency_on_a_user_crate_is_refused_even_for_tests() {
        let injected = edge(("mica-kernel", "kernel"), ("mica-rt", "user/rt"), Kind::Dev);
        assert!(forbidden(&injected).is_some());
    }

    #[test]
    fn a_service_linking_another_service_is_refused() {
        let library = edge(
            ("devices", "services/devices"),
            ("ioreq", "services/ioreq"),
            Kind::Normal,
        );
        assert!(forbidden(&library).is_some());
        let task = edge(
            ("mica-ioreq", "services/ioreq/task"),
            ("devices", "services/devices"),
            Kind::Normal,
        );
        assert!(forbidden(&task).is_some());
        let own = edge(
            ("mica-ioreq", "services/ioreq/task"),
            ("ioreq", "services/ioreq"),
            Kind::Normal,
        );
        assert_eq!(forbidden(&own), None);
    }

    #[test]
    fn service_tests_may_run_services_together() {
        let tests = edge(
            ("vm-manager", "services/vm-manager"),
            ("ioreq", "services/ioreq"),
            Kind::Dev,
        );
        assert_eq!(forbidden(&tests), None);
    }

    #[test]
    fn the_shell_takes_only_names_from_vm_manager() {
        let names = edge(
            ("mica-mgmt", "user/mgmt"),
            ("vm-manager", NAMES_LIBRARY),
            Kind::Normal,
        );
        assert_eq!(forbidden(&names), None);
        let other = edge(
            ("mica-mgmt", "user/mgmt"),
            ("devices", "services/devices"),
            Kind::Normal,
        );
        assert!(forbidden(&other).is_some());
        let task = edge(
            ("mica-shell", "user/shell"),
            ("vm-manager", NAMES_LIBRARY),
            Kind::Normal,
        );
        assert!(forbidden(&task).is_some());
    }

    #[test]
    fn nothing_depends_on_a_tool() {
        let injected = edge(("ipc", "ipc"), ("xtask", "xtask"), Kind::Dev);
        assert!(forbidden(&injected).is_some());
        let injected = edge(
            ("mica-mgmt", "user/mgmt"),
            ("mica-tests", "tests"),
            Kind::Dev,
        );
        assert!(forbidden(&injected).is_some());
    }

    #[test]
    fn a_crate_in_an_unnamed_folder_is_refused_until_it_has_a_layer() {
        let injected = edge(("new", "drivers/new"), ("ipc", "ipc"), Kind::Normal);
        let rule = forbidden(&injected).expect("refused");
        assert!(rule.contains("add it to xtask/src/layers.rs"), "{rule}");
    }
}
