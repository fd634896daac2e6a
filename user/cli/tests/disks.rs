//! `mica create NAME --disk N`: the disk shows in `info`, a disk another
//! VM holds and a disk the machine lacks are refused with what to do, and
//! a destroyed VM's disk is free again (over the stand-in hypervisor,
//! whose machine has disks 0 and 1).

mod common;

use common::{Behaviour, Fake, mica_at};

#[test]
fn a_disk_is_one_vms_until_it_is_destroyed() {
    let fake = Fake::start(Behaviour::Serve);
    let socket = &fake.socket;
    let run = mica_at(socket, &["create", "d1", "--image", "hello", "--disk", "0"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let run = mica_at(socket, &["info", "d1"]);
    assert!(
        run.stdout.contains("\ndisk:          0 (virtio-blk)\n"),
        "{run:?}"
    );
    let run = mica_at(socket, &["info", "d1", "--json"]);
    assert!(run.stdout.contains(",\"disk\":0,"), "{run:?}");

    let run = mica_at(socket, &["create", "d2", "--image", "hello", "--disk", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: disk 0 is attached to another VM: destroy that VM first or choose another --disk\n"
    );
    let run = mica_at(socket, &["info", "d2"]);
    assert_eq!(run.stderr, "error: no VM named d2\n", "nothing left of d2");

    assert_eq!(mica_at(socket, &["destroy", "d1"]).code, 0);
    let run = mica_at(socket, &["create", "d2", "--image", "hello", "--disk", "0"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");

    let run = mica_at(socket, &["create", "d3", "--image", "hello", "--disk", "5"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with("error: no disk 5 on this machine: "),
        "{run:?}"
    );
    let run = mica_at(socket, &["create", "d3", "--image", "hello", "--disk", "9"]);
    assert_eq!(
        run.code, 2,
        "a disk number out of range is a usage error: {run:?}"
    );
    assert_eq!(
        run.stderr,
        "error: --disk \"9\" is not valid: use a disk number from 0 to 7\n"
    );
}
