//! What the busybox initramfs that `cargo xtask guests` packs prints, shared
//! by the Linux QEMU tests and `cargo xtask bench`: the line its `/init`
//! prints once it has mounted /proc, /sys and /dev, carrying Linux's own
//! uptime so that boot time can be read in guest time.

/// The start of the line `/init` prints before it starts the shell; the
/// full line is `mica-linux: init ready (uptime 3.21)`.
pub const INIT_READY: &str = "mica-linux: init ready";

/// The boot command line the tests, the scenarios and the benchmark give
/// the kernel.
pub const CMDLINE: &str = "console=ttyS0";

/// The uptime in the marker line of `line` (which may carry a `linux | `
/// prefix), in milliseconds: `mica-linux: init ready (uptime 3.21)` gives
/// 3210. `None` when the line has no marker or no readable uptime.
pub fn uptime_ms(line: &str) -> Option<u64> {
    let marker = format!("{INIT_READY} (uptime ");
    let at = line.find(&marker)? + marker.len();
    let rest = &line[at..];
    let number = rest.get(..rest.find(')')?)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}").parse().ok()?
    };
    whole.checked_mul(1000)?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::uptime_ms;

    #[test]
    fn reads_the_uptime_with_or_without_the_vm_prefix() {
        assert_eq!(
            uptime_ms("mica-linux: init ready (uptime 3.21)"),
            Some(3210)
        );
        assert_eq!(
            uptime_ms("linux | mica-linux: init ready (uptime 152.07)"),
            Some(152_070)
        );
        assert_eq!(uptime_ms("mica-linux: init ready (uptime 0.5)"), Some(500));
        assert_eq!(uptime_ms("mica-linux: init ready (uptime 7)"), Some(7000));
    }

    #[test]
    fn a_line_without_a_readable_uptime_gives_none() {
        assert_eq!(uptime_ms("mica-linux: init ready"), None);
        assert_eq!(uptime_ms("mica-linux: init ready (uptime )"), None);
        assert_eq!(uptime_ms("mica-linux: init ready (uptime 3.21"), None);
        assert_eq!(uptime_ms("mica-linux: init ready (uptime -1.00)"), None);
        assert_eq!(uptime_ms("mica-linux: init ready (uptime 1.2x)"), None);
        assert_eq!(uptime_ms("vm0 | vm0: tick 3"), None);
    }
}
