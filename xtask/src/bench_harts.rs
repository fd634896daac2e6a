//! The cross-hart figures of `cargo xtask bench` (RISC-V), and the same
//! guest's first figures on 1 and on 4 host harts, and alone and beside
//! two busy VMs.
//!
//! The bench guest (`tests/guests/bench`, `harts.rs`) starts its second
//! hart with SBI HSM and counts, on the boot hart, `instret` over 200 IPI
//! round trips (SBI sPI to the partner, which answers with one back; both
//! wait in `wfi`), 200 IPIs to itself (each with a `wfi` that returns at
//! once: the exits without a switch of hart) and 200 of each SBI RFENCE
//! call. Under QEMU's `-icount` the guest's `instret` is QEMU's one
//! instruction counter for the whole machine, so the counts are every
//! instruction any hart executed meanwhile: under Mica both vCPUs and the
//! kernel that time-shares them on one host hart; natively both harts and
//! OpenSBI. `*_ns` is guest time
//! (`rdtime`): above the count only if the machine sat idle.
//!
//! Natively a remote fence makes OpenSBI on the calling hart spin until the
//! target hart has fenced, and QEMU (one thread running both harts in turn)
//! switches to the target only when the spinning hart's time slice ends: the
//! native `rfence_*_other` / `_both` counts are mostly that slice (about 7
//! million instructions), not the cost of the fence on hardware. The IPI
//! round trip has no such wait (a hart in `wfi` hands QEMU to the other).

use crate::bench_report::{ratio, significant};
use crate::bench_run::{Output, Run};

/// A figure, its value and the line printed for it.
type Figure = (&'static str, String, String);

/// Keys of the SBI RFENCE figures: the guest's (also the JSON key under
/// Mica, with `_ns`), the native one, Mica / native; and what it is.
const RFENCES: [(&str, &str, &str, &str, &str); 3] = [
    (
        "rfence_sfence_vma_other",
        "rfence_sfence_vma_other_ns",
        "native_rfence_sfence_vma_other",
        "rfence_sfence_vma_other_ratio",
        "remote sfence.vma (all addresses) on the other hart",
    ),
    (
        "rfence_sfence_vma_both",
        "rfence_sfence_vma_both_ns",
        "native_rfence_sfence_vma_both",
        "rfence_sfence_vma_both_ratio",
        "remote sfence.vma (all addresses) on both harts",
    ),
    (
        "rfence_fence_i_other",
        "rfence_fence_i_other_ns",
        "native_rfence_fence_i_other",
        "rfence_fence_i_other_ratio",
        "remote fence.i on the other hart",
    ),
];

/// The IPI and RFENCE figures, under Mica and natively, in order.
pub fn figures(mica: &Run, native: &Run) -> Vec<Figure> {
    let mut out: Vec<Figure> = Vec::new();
    let (round, round_ns) = (
        mica.figure("ipi_roundtrip"),
        mica.figure("ipi_roundtrip_ns"),
    );
    let native_round = native.figure("ipi_roundtrip");
    out.push((
        "ipi_roundtrip",
        round.to_string(),
        format!("{round} instructions per IPI round trip between two vCPUs (both and the kernel)"),
    ));
    out.push((
        "ipi_roundtrip_ns",
        round_ns.to_string(),
        format!("{round_ns} ns of guest time per IPI round trip"),
    ));
    out.push((
        "ipi_oneway",
        (round / 2).to_string(),
        format!(
            "{} instructions per one-way IPI (round trip / 2)",
            round / 2
        ),
    ));
    out.push((
        "native_ipi_roundtrip",
        native_round.to_string(),
        format!("{native_round} instructions per IPI round trip without Mica"),
    ));
    out.push((
        "native_ipi_oneway",
        (native_round / 2).to_string(),
        format!(
            "{} instructions per one-way IPI without Mica",
            native_round / 2
        ),
    ));
    let r = significant(ratio(round, native_round));
    out.push((
        "ipi_roundtrip_ratio",
        r.clone(),
        format!("{r} (Mica / native, instructions per IPI round trip)"),
    ));
    let (own, native_own) = (mica.figure("ipi_self"), native.figure("ipi_self"));
    out.push((
        "ipi_self",
        own.to_string(),
        format!("{own} instructions per IPI to the sender itself and its `wfi` (no switch)"),
    ));
    out.push((
        "native_ipi_self",
        native_own.to_string(),
        format!("{native_own} instructions per IPI to the sender itself without Mica"),
    ));
    let switch = round.saturating_sub(2 * own) / 2;
    out.push((
        "ipi_vcpu_switch",
        switch.to_string(),
        format!(
            "{switch} instructions per switch from a vCPU waiting in `wfi` to the other \
             ((ipi_roundtrip - 2 x ipi_self) / 2)"
        ),
    ));
    for (key, ns_key, native_key, ratio_key, what) in RFENCES {
        let (n, ns, native_n) = (mica.figure(key), mica.figure(ns_key), native.figure(key));
        out.push((key, n.to_string(), format!("{n} instructions per {what}")));
        out.push((ns_key, ns.to_string(), format!("{ns} ns of guest time")));
        out.push((
            native_key,
            native_n.to_string(),
            format!(
                "{native_n} instructions without Mica (mostly QEMU's time slice: OpenSBI spins \
                 until the other hart has run)"
            ),
        ));
        let r = significant(ratio(n, native_n));
        out.push((
            ratio_key,
            r.clone(),
            format!("{r} (Mica / native; native is QEMU's time slice, not a fence's cost)"),
        ));
    }
    out
}

/// Two runs of the bench guest's first figures compared: for each figure,
/// the guest's key, the key of its count in the other run and of other /
/// base; and how the lines name the two runs.
struct Comparison {
    keys: &'static [(&'static str, &'static str, &'static str)],
    /// The other run ("on 4 host harts").
    other: &'static str,
    /// The base run, after the count ("on 1").
    base: &'static str,
    /// The ratio's two runs ("4 host harts / 1").
    ratio: &'static str,
}

/// Mica on 1 and on 4 host harts (issue 13 wants the ratios within a few
/// per cent of 1).
const HOST_HARTS: Comparison = Comparison {
    keys: &[
        (
            "null_sbi_call",
            "smp4_null_sbi_call",
            "smp4_null_sbi_call_ratio",
        ),
        (
            "mmio_uart_roundtrip",
            "smp4_mmio_uart_roundtrip",
            "smp4_mmio_uart_roundtrip_ratio",
        ),
        (
            "ipi_roundtrip",
            "smp4_ipi_roundtrip",
            "smp4_ipi_roundtrip_ratio",
        ),
    ],
    other: "on 4 host harts",
    base: "on 1",
    ratio: "4 host harts / 1",
};

/// The bench VM alone and beside two VMs that spin on the same host hart
/// (scenario `bench-busy`). The counts are of the whole hart, so a round
/// trip that waited behind a neighbour's time slice (10 ms, 10 million
/// instructions) would show in its mean: the vCPU whose access completes
/// runs next (issue 10).
const BESIDE_BUSY_VMS: Comparison = Comparison {
    keys: &[
        (
            "null_sbi_call",
            "busy_null_sbi_call",
            "busy_null_sbi_call_ratio",
        ),
        (
            "mmio_uart_roundtrip",
            "busy_mmio_uart_roundtrip",
            "busy_mmio_uart_roundtrip_ratio",
        ),
        (
            "mmio_uart_posted_write",
            "busy_mmio_uart_posted_write",
            "busy_mmio_uart_posted_write_ratio",
        ),
        (
            "ipi_roundtrip",
            "busy_ipi_roundtrip",
            "busy_ipi_roundtrip_ratio",
        ),
    ],
    other: "beside two busy VMs",
    base: "alone",
    ratio: "beside two busy VMs / alone",
};

/// The value of `key` in `figures` (0 if absent).
pub(crate) fn value(figures: &[(&str, u64)], key: &str) -> u64 {
    figures
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(0, |(_, v)| *v)
}

/// Mica on 4 host harts (`more`) against 1 (`one`): the counts on 4 and
/// the ratios 4 / 1.
pub fn cpu_figures(one: &[(&str, u64)], more: &[(&str, u64)]) -> Vec<Figure> {
    compared(&HOST_HARTS, one, more)
}

/// The bench VM beside two busy VMs (`busy`) against alone (`alone`): the
/// counts beside them and the ratios.
pub fn busy_figures(alone: &[(&str, u64)], busy: &[(&str, u64)]) -> Vec<Figure> {
    compared(&BESIDE_BUSY_VMS, alone, busy)
}

/// `busy_uart_out_share`: the part of the host hart the bench VM had (with
/// the services' work for it) while it wrote its 64 KiB byte by byte
/// beside two spinning VMs: the instructions the same output took alone
/// over those it took beside them (the counts are the whole hart's). A
/// third is a fair share; a VM doing I/O that starved its neighbours would
/// come near 1.
pub fn busy_share(alone: &Output, busy: &Output) -> Figure {
    let share = significant(ratio(alone.instructions, busy.instructions));
    (
        "busy_uart_out_share",
        share.clone(),
        format!(
            "{share} of the host hart ({} instructions alone, {} beside two busy VMs)",
            alone.instructions, busy.instructions
        ),
    )
}

/// The counts of the `other` run and their ratios to `base`'s, as
/// `comparison` names them.
fn compared(comparison: &Comparison, base: &[(&str, u64)], other: &[(&str, u64)]) -> Vec<Figure> {
    let mut out: Vec<Figure> = Vec::new();
    for &(key, other_key, ratio_key) in comparison.keys {
        let (a, b) = (value(base, key), value(other, key));
        out.push((
            other_key,
            b.to_string(),
            format!(
                "{b} instructions {} ({a} {})",
                comparison.other, comparison.base
            ),
        ));
        let r = significant(ratio(b, a));
        out.push((ratio_key, r.clone(), format!("{r} ({})", comparison.ratio)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{busy_figures, busy_share, cpu_figures, figures};
    use crate::bench_report::tests::value;
    use crate::bench_run::{Output, Run};
    use std::time::Duration;

    fn run(figures: Vec<(&'static str, u64)>) -> Run {
        let output = Output {
            bytes: 0,
            instructions: 0,
            ns: 0,
            wall: Duration::ZERO,
        };
        Run {
            figures,
            out: output,
            fifo: output,
            exits: Duration::ZERO,
        }
    }

    #[test]
    fn ipi_and_rfence_figures_are_mica_native_and_their_ratio() {
        let mica = run(vec![
            ("ipi_roundtrip", 3001),
            ("ipi_roundtrip_ns", 3100),
            ("ipi_self", 500),
            ("rfence_sfence_vma_other", 400),
            ("rfence_sfence_vma_other_ns", 400),
            ("rfence_sfence_vma_both", 420),
            ("rfence_fence_i_other", 380),
        ]);
        let native = run(vec![
            ("ipi_roundtrip", 1000),
            ("ipi_self", 300),
            ("rfence_sfence_vma_other", 8000),
            ("rfence_fence_i_other", 0),
        ]);
        let f = figures(&mica, &native);
        assert_eq!(value(&f, "ipi_roundtrip"), "3001");
        assert_eq!(value(&f, "ipi_roundtrip_ns"), "3100");
        assert_eq!(value(&f, "ipi_oneway"), "1500");
        assert_eq!(value(&f, "native_ipi_oneway"), "500");
        assert_eq!(value(&f, "ipi_roundtrip_ratio"), "3.001");
        assert_eq!(value(&f, "ipi_self"), "500");
        assert_eq!(value(&f, "native_ipi_self"), "300");
        assert_eq!(value(&f, "ipi_vcpu_switch"), "1000");
        assert_eq!(value(&f, "rfence_sfence_vma_other_ratio"), "0.05000");
        assert_eq!(value(&f, "native_rfence_sfence_vma_both"), "0");
        assert_eq!(value(&f, "rfence_sfence_vma_both_ratio"), "0");
        assert_eq!(value(&f, "rfence_fence_i_other"), "380");
        let keys: std::collections::BTreeSet<&str> = f.iter().map(|x| x.0).collect();
        assert_eq!(keys.len(), f.len(), "every key once");
        assert_eq!(f.len(), 9 + 3 * 4);
    }

    #[test]
    fn host_hart_counts_compare_four_with_one() {
        let one = [("null_sbi_call", 200), ("mmio_uart_roundtrip", 2800)];
        let four = [
            ("null_sbi_call", 210),
            ("mmio_uart_roundtrip", 2800),
            ("ipi_roundtrip", 5),
        ];
        let f = cpu_figures(&one, &four);
        assert_eq!(value(&f, "smp4_null_sbi_call"), "210");
        assert_eq!(value(&f, "smp4_null_sbi_call_ratio"), "1.050");
        assert_eq!(value(&f, "smp4_mmio_uart_roundtrip_ratio"), "1.000");
        assert_eq!(value(&f, "smp4_ipi_roundtrip"), "5");
        assert_eq!(value(&f, "smp4_ipi_roundtrip_ratio"), "0");
        assert!(f[0].2.contains("(200 on 1)"), "{}", f[0].2);
    }

    #[test]
    fn the_share_of_the_hart_is_the_output_alone_over_beside_busy_vms() {
        let output = |instructions| Output {
            bytes: 65536,
            instructions,
            ns: instructions,
            wall: Duration::ZERO,
        };
        let (key, value, line) = busy_share(&output(330_820_011), &output(939_508_547));
        assert_eq!((key, value.as_str()), ("busy_uart_out_share", "0.3521"));
        assert!(line.contains("330820011 instructions alone"), "{line}");
    }

    #[test]
    fn counts_beside_busy_vms_compare_with_the_vm_alone() {
        let alone = [
            ("null_sbi_call", 143),
            ("mmio_uart_roundtrip", 3397),
            ("mmio_uart_posted_write", 211),
            ("ipi_roundtrip", 10213),
        ];
        let busy = [
            ("null_sbi_call", 143),
            ("mmio_uart_roundtrip", 3529),
            ("mmio_uart_posted_write", 211),
            ("ipi_roundtrip", 10303),
        ];
        let f = busy_figures(&alone, &busy);
        assert_eq!(f.len(), 8);
        assert_eq!(value(&f, "busy_mmio_uart_roundtrip"), "3529");
        assert_eq!(value(&f, "busy_mmio_uart_roundtrip_ratio"), "1.039");
        assert_eq!(value(&f, "busy_null_sbi_call_ratio"), "1.000");
        assert_eq!(value(&f, "busy_ipi_roundtrip_ratio"), "1.009");
        let line = &f[2].2;
        assert!(
            line.contains("3529 instructions beside two busy VMs (3397 alone)"),
            "{line}"
        );
    }
}
