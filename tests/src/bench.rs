//! The bench guests' figure lines (`bench: <key> N`, on RISC-V and x86),
//! and the check that the bench VM's I/O costs beside busy VMs what it
//! costs alone.

use std::time::Duration;

use crate::Session;

/// The number in the next `bench: <key> N` line (which may carry a
/// `vm0 | ` prefix), waiting at most `wait` for it.
pub fn figure(s: &mut Session, key: &str, wait: Duration) -> Result<u64, String> {
    let marker = format!("bench: {key} ");
    let line = s.expect(&marker, wait)?;
    let at = line
        .find(&marker)
        .map_or(line.len(), |at| at + marker.len());
    line[at..]
        .trim()
        .parse()
        .map_err(|e| format!("no number in {line:?}: {e}"))
}

/// Checks that each of the bench guest's counts beside two `steady` VMs
/// (`busy`, named by `names`) is within a tenth of the same count with
/// the VM alone: a round trip that waited behind a neighbour's time
/// slice would be far above.
pub fn assert_beside_busy_vms_as_alone(names: [&str; 4], alone: [u64; 4], busy: [u64; 4]) {
    for ((name, a), b) in names.iter().zip(alone).zip(busy) {
        assert!(
            b <= a + a / 10,
            "{name}: {b} instructions beside two busy VMs, {a} alone"
        );
    }
    println!("alone {alone:?}, beside two busy VMs {busy:?}");
}
