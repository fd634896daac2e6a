//! The busybox initramfs Mica boots Linux with: a static busybox, the
//! applet links the tests and a person at the console use, /dev/console,
//! a minimal /etc, the kernel modules of the virtio devices (and the
//! network card's `failover` and `net_failover`) in
//! /lib/modules and an `/init` script that mounts proc, sysfs and
//! devtmpfs, prints [`INIT_READY`] with the uptime, loads the modules in
//! order (after the marker, so the boot-time benchmark measures the same
//! kernel work as before) and starts a shell with job control on the
//! console. Packed as an uncompressed `newc` archive
//! (Linux unpacks those as they are).

use mica_tests::linux::INIT_READY;

use crate::cpio::{Member, archive};

/// Busybox applets linked in /bin (busybox finds the applet by the name it
/// was started as).
const APPLETS: &[&str] = &[
    "ash",
    "cat",
    "cmp",
    "cp",
    "cttyhack",
    "dd",
    "df",
    "diff",
    "dmesg",
    "echo",
    "free",
    "grep",
    "halt",
    "head",
    "hostname",
    "insmod",
    "ip",
    "ln",
    "ls",
    "lsmod",
    "md5sum",
    "mkdir",
    "modprobe",
    "mount",
    "od",
    "ping",
    "poweroff",
    "ps",
    "reboot",
    "rm",
    "sed",
    "seq",
    "setsid",
    "sh",
    "sha256sum",
    "sleep",
    "stat",
    "sync",
    "tail",
    "taskset",
    "touch",
    "umount",
    "uname",
    "wc",
    "yes",
];

/// `/init`: runs as PID 1 under busybox sh. `cttyhack` opens the kernel's
/// active console (/dev/ttyS0 with `console=ttyS0`) as the controlling
/// terminal of a new session, so the shell has job control and Ctrl-C.
fn init_script(modules: &[&str]) -> String {
    let loads: String = modules
        .iter()
        .map(|m| format!("insmod /lib/modules/{m} || echo \"init: cannot load {m}\"\n"))
        .collect();
    format!(
        "#!/bin/sh\n\
         # Mica's busybox initramfs (xtask/src/initramfs.rs).\n\
         export PATH=/bin HOME=/root PS1='mica-linux# '\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         read uptime idle < /proc/uptime\n\
         echo \"{INIT_READY} (uptime $uptime)\"\n\
         {loads}\
         exec setsid cttyhack sh\n"
    )
}

/// The files of /etc: enough for `ls -l`, `id` and a hostname.
const ETC: &[(&str, &str)] = &[
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/group", "root:x:0:\n"),
    ("etc/hostname", "mica-linux\n"),
];

/// The initramfs members around the static `busybox` executable and the
/// kernel `modules` (file name, contents; loaded in this order).
pub fn members(busybox: Vec<u8>, modules: &[(String, Vec<u8>)]) -> Vec<Member> {
    let dir = |path: &str, mode| Member::Dir {
        path: path.into(),
        mode,
    };
    let mut members = vec![
        dir("bin", 0o755),
        dir("dev", 0o755),
        dir("etc", 0o755),
        dir("lib", 0o755),
        dir("lib/modules", 0o755),
        dir("proc", 0o555),
        dir("root", 0o700),
        dir("sys", 0o555),
        dir("tmp", 0o1777),
        // Where a disk is mounted.
        dir("mnt", 0o755),
        // The kernel opens it for /init's stdin and stdout before
        // devtmpfs is mounted over /dev.
        Member::CharDevice {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        Member::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: busybox,
        },
    ];
    members.extend(APPLETS.iter().map(|applet| Member::Symlink {
        path: format!("bin/{applet}"),
        target: "busybox".into(),
    }));
    members.extend(ETC.iter().map(|(path, text)| Member::File {
        path: (*path).into(),
        mode: 0o644,
        data: text.as_bytes().to_vec(),
    }));
    members.extend(modules.iter().map(|(name, data)| Member::File {
        path: format!("lib/modules/{name}"),
        mode: 0o644,
        data: data.clone(),
    }));
    let names: Vec<&str> = modules.iter().map(|(name, _)| name.as_str()).collect();
    members.push(Member::File {
        path: "init".into(),
        mode: 0o755,
        data: init_script(&names).into_bytes(),
    });
    members
}

/// The packed initramfs around `busybox` and `modules`.
pub fn build(busybox: Vec<u8>, modules: &[(String, Vec<u8>)]) -> Vec<u8> {
    archive(&members(busybox, modules))
}

#[cfg(test)]
mod tests {
    use super::{init_script, members};
    use crate::cpio::Member;
    use mica_tests::linux::INIT_READY;

    fn find<'m>(members: &'m [Member], wanted: &str) -> &'m Member {
        let path_of = |m: &Member| match m {
            Member::Dir { path, .. }
            | Member::File { path, .. }
            | Member::Symlink { path, .. }
            | Member::CharDevice { path, .. } => path.clone(),
        };
        members
            .iter()
            .find(|m| path_of(m) == wanted)
            .unwrap_or_else(|| panic!("no {wanted} in the initramfs"))
    }

    #[test]
    fn init_is_an_executable_script_that_prints_the_marker_then_starts_a_shell() {
        let modules = [
            ("virtio_mmio.ko".to_string(), b"\x7fELF mmio".to_vec()),
            ("virtio-rng.ko".to_string(), b"\x7fELF rng".to_vec()),
        ];
        let members = members(b"\x7fELF".to_vec(), &modules);
        let Member::File { data: module, .. } = find(&members, "lib/modules/virtio-rng.ko") else {
            panic!("no virtio-rng module file");
        };
        assert_eq!(module, &modules[1].1);
        let Member::File { mode, data, .. } = find(&members, "init") else {
            panic!("/init is not a file");
        };
        assert_eq!(*mode, 0o755);
        let script = String::from_utf8(data.clone()).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        let mounts = script.find("mount -t devtmpfs").unwrap();
        let marker = script.find(INIT_READY).unwrap();
        let shell = script.find("exec setsid cttyhack sh").unwrap();
        let mmio = script.find("insmod /lib/modules/virtio_mmio.ko").unwrap();
        let rng = script.find("insmod /lib/modules/virtio-rng.ko").unwrap();
        assert!(
            mounts < marker && marker < mmio && mmio < rng && rng < shell,
            "{script}"
        );
        assert!(script.contains("(uptime $uptime)"), "{script}");
        assert_eq!(script, init_script(&["virtio_mmio.ko", "virtio-rng.ko"]));
    }

    #[test]
    fn the_shell_and_the_applets_the_tests_use_link_to_busybox() {
        let members = members(b"\x7fELF".to_vec(), &[]);
        for applet in [
            "sh", "cttyhack", "setsid", "mount", "uname", "cat", "ls", "poweroff",
        ] {
            assert_eq!(
                find(&members, &format!("bin/{applet}")),
                &Member::Symlink {
                    path: format!("bin/{applet}"),
                    target: "busybox".into()
                }
            );
        }
        assert!(matches!(
            find(&members, "bin/busybox"),
            Member::File { mode: 0o755, data, .. } if data == b"\x7fELF"
        ));
        assert!(matches!(
            find(&members, "dev/console"),
            Member::CharDevice {
                major: 5,
                minor: 1,
                ..
            }
        ));
        for dir in ["dev", "proc", "sys", "etc"] {
            assert!(matches!(find(&members, dir), Member::Dir { .. }), "{dir}");
        }
    }
}
