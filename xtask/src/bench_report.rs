//! The JSON figures and summary lines of `cargo xtask bench` (RISC-V) from
//! the bench guest's runs under Mica and natively (`bench_run`) and the
//! stage breakdown (`bench_trace`). Each sustained output has the same
//! keys under its own prefix: `uart_out_*` (byte by byte, LSR polled
//! before every THR write) and `uart_fifo_*` (up to 16 bytes per LSR.THRE,
//! as Linux's 8250 driver writes a 16550A's FIFO).

use crate::bench_run::{EXIT_ROUNDS, Output, Run};
use crate::bench_trace::Breakdown;

/// The figures for `target/bench/riscv64.json`, in order, each with the
/// summary line printed for it.
pub fn figures(
    mica: &Run,
    native: &Run,
    breakdown: Option<&Breakdown>,
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let mut add = |key: &'static str, value: String, summary: String| {
        out.push((key, value, summary));
    };
    for (op, ns_key, ratio_key) in [
        (
            "null_sbi_call",
            "null_sbi_call_ns",
            "null_sbi_call_ns_per_instruction",
        ),
        (
            "mmio_uart_roundtrip",
            "mmio_uart_roundtrip_ns",
            "mmio_uart_roundtrip_ns_per_instruction",
        ),
    ] {
        let (n, ns) = (mica.figure(op), mica.figure(ns_key));
        add(op, n.to_string(), format!("{n} instructions"));
        add(ns_key, ns.to_string(), format!("{ns} ns of guest time"));
        let ratio = format!("{:.3}", ratio(ns, n));
        add(
            ratio_key,
            ratio.clone(),
            format!("{ratio} (1 = no idle time)"),
        );
    }
    let idle = mica.figure("mmio_uart_max_idle_ns");
    add(
        "mmio_uart_max_idle_ns",
        idle.to_string(),
        format!("{idle} ns: the largest idle gap of one LSR read"),
    );
    let posted = mica.figure("mmio_uart_posted_write");
    add(
        "mmio_uart_posted_write",
        posted.to_string(),
        format!("{posted} instructions per THR write on its own (posted)"),
    );
    if let Some(b) = breakdown {
        let s = &b.stages;
        let total = format!(
            "one traced round trip; mmio_uart_roundtrip {}",
            mica.figure("mmio_uart_roundtrip")
        );
        for (key, value, what) in [
            (
                "mmio_stage_kernel_exit",
                s.kernel_exit,
                "guest exit -> ioreq",
            ),
            ("mmio_stage_ioreq", s.ioreq, "ioreq task"),
            ("mmio_stage_kernel_ipc", s.kernel_ipc, "ioreq -> devices"),
            ("mmio_stage_devices", s.devices, "devices task"),
            ("mmio_stage_return", s.ret, "the completion -> guest"),
            ("mmio_stage_total", s.total(), total.as_str()),
        ] {
            add(
                key,
                value.to_string(),
                format!("{value} instructions ({what})"),
            );
        }
        add(
            "mmio_stage_samples",
            b.typical.to_string(),
            format!(
                "{} of {} clean traced round trips had this total ({} guest exits, \
                 {} TBs run without a logged translation, {} chained)",
                b.typical, b.clean, b.exits, b.unmapped, b.chained
            ),
        );
    }
    for (key, op) in [
        ("native_null_sbi_call", "null_sbi_call"),
        ("native_mmio_uart_roundtrip", "mmio_uart_roundtrip"),
        ("native_mmio_uart_posted_write", "mmio_uart_posted_write"),
    ] {
        let n = native.figure(op);
        add(key, n.to_string(), format!("{n} instructions without Mica"));
    }
    for keys in [&UART_OUT, &UART_FIFO] {
        output_figures(keys, (keys.of)(mica), (keys.of)(native), &mut add);
    }
    exit_wall_figures(mica, native, &mut add);
    out
}

/// The wall time of one exit under Mica and natively (the guest's
/// `bench_run::EXIT_ROUNDS` null SBI calls, timed on the host), and what
/// it bounds. Natively a byte of the FIFO run costs about one write of it
/// to the host through QEMU's 16550 (the guest spends some 10
/// instructions on it). Under Mica the guest's THR write is an exit,
/// and the byte still goes out through the same 16550 (the kernel's
/// console): so a byte costs at least one exit plus native's whole
/// byte, and the best `uart_fifo_ratio_per_wall_s` this QEMU allows,
/// with everything else free, is native's time per byte over that sum.
fn exit_wall_figures(mica: &Run, native: &Run, add: &mut impl FnMut(&'static str, String, String)) {
    let per_exit = |run: &Run| run.exits.as_secs_f64() * 1e9 / f64::from(EXIT_ROUNDS);
    let (m, n) = (per_exit(mica), per_exit(native));
    for (key, ns, where_) in [
        ("null_sbi_call_wall_ns", m, "under Mica"),
        ("native_null_sbi_call_wall_ns", n, "without Mica"),
    ] {
        let value = format!("{ns:.0}");
        add(
            key,
            value.clone(),
            format!("{value} ns of wall time per null SBI call {where_}"),
        );
    }
    #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let native_per_byte = native.fifo.wall.as_secs_f64() * 1e9 / (native.fifo.bytes.max(1) as f64);
    let bound = significant(native_per_byte / (m + native_per_byte).max(f64::MIN_POSITIVE));
    add(
        "uart_wall_ratio_bound",
        bound.clone(),
        format!(
            "{bound}: the best uart_fifo_ratio_per_wall_s with one exit per byte and the \
             byte sent out as natively ({native_per_byte:.0} ns per byte natively, {m:.0} ns \
             per exit under Mica)"
        ),
    );
}

/// The keys of one sustained output and which of a [`Run`]'s it is.
struct OutputKeys {
    of: fn(&Run) -> &Output,
    bytes: &'static str,
    /// Under Mica, then natively: instructions, ns, wall ms and bytes per
    /// million instructions, per guest second, per wall second.
    mica: [&'static str; 6],
    native: [&'static str; 6],
    /// Mica / native: bytes per instruction, per guest second, per wall
    /// second.
    ratios: [&'static str; 3],
}

/// [`OutputKeys`] named `uart_<run>_*`, for `run` a string literal.
macro_rules! output_keys {
    ($run:literal, $of:expr) => {
        OutputKeys {
            of: $of,
            bytes: concat!("uart_", $run, "_bytes"),
            mica: [
                concat!("uart_", $run, "_mica_instructions"),
                concat!("uart_", $run, "_mica_ns"),
                concat!("uart_", $run, "_mica_wall_ms"),
                concat!("uart_", $run, "_mica_bytes_per_minstr"),
                concat!("uart_", $run, "_mica_bytes_per_guest_s"),
                concat!("uart_", $run, "_mica_bytes_per_wall_s"),
            ],
            native: [
                concat!("uart_", $run, "_native_instructions"),
                concat!("uart_", $run, "_native_ns"),
                concat!("uart_", $run, "_native_wall_ms"),
                concat!("uart_", $run, "_native_bytes_per_minstr"),
                concat!("uart_", $run, "_native_bytes_per_guest_s"),
                concat!("uart_", $run, "_native_bytes_per_wall_s"),
            ],
            ratios: [
                concat!("uart_", $run, "_ratio_per_minstr"),
                concat!("uart_", $run, "_ratio_per_guest_s"),
                concat!("uart_", $run, "_ratio_per_wall_s"),
            ],
        }
    };
}

/// The sustained output byte by byte, and in FIFO bursts.
const UART_OUT: OutputKeys = output_keys!("out", |run| &run.out);
const UART_FIFO: OutputKeys = output_keys!("fifo", |run| &run.fifo);

/// The figures of one sustained output, `mica` and `native`, under `keys`.
fn output_figures(
    keys: &OutputKeys,
    mica: &Output,
    native: &Output,
    add: &mut impl FnMut(&'static str, String, String),
) {
    let bytes = mica.bytes;
    add(keys.bytes, bytes.to_string(), format!("{bytes} bytes"));
    let (m, n) = (Rates::of(mica), Rates::of(native));
    for (keys, o, r, where_) in [
        (&keys.mica, mica, &m, "under Mica"),
        (&keys.native, native, &n, "without Mica"),
    ] {
        let [instructions, ns, wall, per_minstr, per_guest_s, per_wall_s] = *keys;
        let wall_ms = o.wall.as_millis();
        let values = [
            (instructions, o.instructions.to_string(), "instructions"),
            (ns, o.ns.to_string(), "ns of guest time"),
            (wall, wall_ms.to_string(), "ms of wall time"),
            (
                per_minstr,
                format!("{:.1}", r.per_minstr),
                "bytes per million instructions",
            ),
            (
                per_guest_s,
                format!("{:.0}", r.per_guest_s),
                "bytes per second of guest time",
            ),
            (
                per_wall_s,
                format!("{:.0}", r.per_wall_s),
                "bytes per second of wall time",
            ),
        ];
        for (key, value, unit) in values {
            let summary = format!("{value} {unit} {where_}");
            add(key, value, summary);
        }
    }
    let [per_minstr, per_guest_s, per_wall_s] = keys.ratios;
    for (key, mica_rate, native_rate, what) in [
        (
            per_minstr,
            m.per_minstr,
            n.per_minstr,
            "bytes per instruction",
        ),
        (
            per_guest_s,
            m.per_guest_s,
            n.per_guest_s,
            "bytes per guest second",
        ),
        (
            per_wall_s,
            m.per_wall_s,
            n.per_wall_s,
            "bytes per wall second",
        ),
    ] {
        let r = significant(mica_rate / native_rate.max(f64::MIN_POSITIVE));
        add(key, r.clone(), format!("{r} (Mica / native, {what})"));
    }
}

/// Sustained-output rates.
struct Rates {
    per_minstr: f64,
    per_guest_s: f64,
    per_wall_s: f64,
}

impl Rates {
    #[allow(
        clippy::cast_precision_loss,
        reason = "byte and instruction counts far below 2^52"
    )]
    fn of(o: &Output) -> Rates {
        let bytes = o.bytes as f64;
        Rates {
            per_minstr: bytes * 1e6 / (o.instructions.max(1) as f64),
            per_guest_s: bytes * 1e9 / (o.ns.max(1) as f64),
            per_wall_s: bytes / o.wall.as_secs_f64().max(1e-9),
        }
    }
}

/// `a / b` (0 when `b` is 0).
#[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// `x` with four significant digits, in plain decimal notation.
pub(crate) fn significant(x: f64) -> String {
    if x <= 0.0 || !x.is_finite() {
        return "0".into();
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the exponent of a finite f64 fits in i32"
    )]
    let magnitude = x.log10().floor() as i32;
    let decimals = usize::try_from(3 - magnitude).unwrap_or(0);
    format!("{x:.decimals$}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{figures, significant};
    use crate::bench_run::{EXIT_ROUNDS, Output, Run};
    use crate::bench_trace::{Breakdown, Stages};
    use std::time::Duration;

    /// A run whose two sustained outputs took `instructions`, `ns` and
    /// `wall_ms`, the FIFO run a quarter of each.
    fn run(sbi: u64, mmio: u64, instructions: u64, ns: u64, wall_ms: u64) -> Run {
        Run {
            figures: vec![
                ("timebase_hz", 10_000_000),
                ("null_sbi_call", sbi),
                ("null_sbi_call_ns", sbi),
                ("mmio_uart_roundtrip", mmio),
                ("mmio_uart_roundtrip_ns", mmio * 2),
                ("mmio_uart_max_idle_ns", 50),
                ("mmio_uart_posted_write", mmio / 10),
            ],
            out: Output {
                bytes: 65536,
                instructions,
                ns,
                wall: Duration::from_millis(wall_ms),
            },
            fifo: Output {
                bytes: 65536,
                instructions: instructions / 4,
                ns: ns / 4,
                wall: Duration::from_millis(wall_ms / 4),
            },
            // 0.4 ns per call per ms of the byte-by-byte run's wall.
            exits: Duration::from_nanos(wall_ms * 2 / 5 * u64::from(EXIT_ROUNDS)),
        }
    }

    /// The value of report line `key` (the test fails without one).
    pub(crate) fn value<'a>(figures: &'a [(&str, String, String)], key: &str) -> &'a str {
        &figures
            .iter()
            .find(|f| f.0 == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .1
    }

    #[test]
    fn rates_and_ratios_are_mica_over_native() {
        let mica = run(300, 9000, 1_000_000_000, 2_000_000_000, 10_000);
        let native = run(300, 2, 640_000, 640_000, 100);
        let f = figures(&mica, &native, None);
        assert_eq!(value(&f, "mmio_uart_roundtrip_ns_per_instruction"), "2.000");
        assert_eq!(value(&f, "uart_out_mica_bytes_per_minstr"), "65.5");
        assert_eq!(value(&f, "uart_out_native_bytes_per_minstr"), "102400.0");
        assert_eq!(value(&f, "uart_out_mica_bytes_per_guest_s"), "32768");
        assert_eq!(value(&f, "uart_out_mica_bytes_per_wall_s"), "6554");
        assert_eq!(value(&f, "uart_out_native_bytes_per_wall_s"), "655360");
        assert_eq!(value(&f, "uart_out_ratio_per_wall_s"), "0.01000");
        assert_eq!(value(&f, "uart_out_ratio_per_minstr"), "0.0006400");
        assert_eq!(value(&f, "native_mmio_uart_roundtrip"), "2");
        assert_eq!(value(&f, "mmio_uart_posted_write"), "900");
        assert_eq!(value(&f, "native_mmio_uart_posted_write"), "0");
        assert!(f.iter().all(|x| !x.0.starts_with("mmio_stage")));
        // The existing figures stay first, as before.
        assert_eq!(f[0].0, "null_sbi_call");
    }

    #[test]
    fn the_fifo_run_has_the_same_figures_from_its_own_output() {
        let mica = run(300, 9000, 1_000_000_000, 2_000_000_000, 10_000);
        let native = run(300, 2, 640_000, 640_000, 100);
        let f = figures(&mica, &native, None);
        assert_eq!(value(&f, "uart_fifo_bytes"), "65536");
        assert_eq!(value(&f, "uart_fifo_mica_instructions"), "250000000");
        assert_eq!(value(&f, "uart_fifo_mica_ns"), "500000000");
        assert_eq!(value(&f, "uart_fifo_mica_wall_ms"), "2500");
        assert_eq!(value(&f, "uart_fifo_mica_bytes_per_minstr"), "262.1");
        assert_eq!(value(&f, "uart_fifo_mica_bytes_per_guest_s"), "131072");
        assert_eq!(value(&f, "uart_fifo_mica_bytes_per_wall_s"), "26214");
        assert_eq!(value(&f, "uart_fifo_native_instructions"), "160000");
        assert_eq!(value(&f, "uart_fifo_native_ns"), "160000");
        assert_eq!(value(&f, "uart_fifo_native_wall_ms"), "25");
        assert_eq!(value(&f, "uart_fifo_native_bytes_per_minstr"), "409600.0");
        assert_eq!(value(&f, "uart_fifo_native_bytes_per_guest_s"), "409600000");
        assert_eq!(value(&f, "uart_fifo_native_bytes_per_wall_s"), "2621440");
        assert_eq!(value(&f, "uart_fifo_ratio_per_minstr"), "0.0006400");
        assert_eq!(value(&f, "uart_fifo_ratio_per_guest_s"), "0.0003200");
        assert_eq!(value(&f, "uart_fifo_ratio_per_wall_s"), "0.01000");
        // The byte-by-byte figures are still the `out` run's.
        assert_eq!(value(&f, "uart_out_mica_instructions"), "1000000000");
        assert_eq!(value(&f, "uart_out_native_wall_ms"), "100");
        // Every key once; the FIFO run's after the byte-by-byte run's, and
        // as many of them.
        let keys: Vec<&str> = f.iter().map(|x| x.0).collect();
        let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len());
        let out: Vec<usize> = (0..keys.len())
            .filter(|&i| keys[i].starts_with("uart_out_"))
            .collect();
        let fifo: Vec<usize> = (0..keys.len())
            .filter(|&i| keys[i].starts_with("uart_fifo_"))
            .collect();
        assert_eq!((out.len(), fifo.len()), (16, 16));
        assert!(out.last() < fifo.first());
        let line = &f
            .iter()
            .find(|x| x.0 == "uart_fifo_ratio_per_wall_s")
            .unwrap()
            .2;
        assert_eq!(line, "0.01000 (Mica / native, bytes per wall second)");
    }

    #[test]
    fn one_exit_bounds_the_fifo_wall_ratio() {
        let mica = run(300, 9000, 1_000_000_000, 2_000_000_000, 10_000);
        let native = run(300, 2, 640_000, 640_000, 100);
        let f = figures(&mica, &native, None);
        assert_eq!(value(&f, "null_sbi_call_wall_ns"), "4000");
        assert_eq!(value(&f, "native_null_sbi_call_wall_ns"), "40");
        // Natively 25 ms for 65536 bytes: 381.5 ns a byte, over that and
        // 4000 ns an exit.
        assert_eq!(value(&f, "uart_wall_ratio_bound"), "0.08706");
        // Below the bound, as a run must be: 0.01.
        assert_eq!(value(&f, "uart_fifo_ratio_per_wall_s"), "0.01000");
    }

    #[test]
    fn the_breakdown_goes_in_when_there_is_one() {
        let mica = run(300, 9000, 1, 1, 1);
        let stages = Stages {
            kernel_exit: 1,
            ioreq: 2,
            kernel_ipc: 3,
            devices: 4,
            ret: 5,
        };
        let b = Breakdown {
            stages,
            clean: 20,
            typical: 18,
            exits: 40,
            unmapped: 0,
            chained: 0,
        };
        let f = figures(&mica, &mica, Some(&b));
        assert_eq!(value(&f, "mmio_stage_return"), "5");
        assert_eq!(value(&f, "mmio_stage_total"), "15");
        assert_eq!(value(&f, "mmio_stage_samples"), "18");
    }

    #[test]
    fn ratios_keep_four_significant_digits() {
        assert_eq!(significant(1.371), "1.371");
        assert_eq!(significant(0.000_54), "0.0005400");
        assert_eq!(significant(123.46), "123.5");
        assert_eq!(significant(12345.0), "12345");
        assert_eq!(significant(0.0), "0");
    }
}
