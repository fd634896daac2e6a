//! `mica images` and what a create refused for its image says, for people
//! and scripts.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

mod common;

use common::{Fake, mica_at};
use mica_mgmt::testing::EXAMPLE_IMAGES;

#[test]
fn images_lists_name_kind_and_size() {
    let fake = Fake::with_images();
    let run = mica_at(&fake.socket, &["images"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        run.stdout,
        "\
NAME     KIND         SIZE
hello    raw          8 KiB
vmlinux  Linux Image  24 MiB
initrd   initrd       3 MiB
linux    raw          64 KiB
zephyr   raw          300 bytes
"
    );
    let run = mica_at(&fake.socket, &["images", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "{\"images\":[{\"name\":\"hello\",\"kind\":\"raw\",\"size\":8192},\
         {\"name\":\"vmlinux\",\"kind\":\"linux_image\",\"size\":25165824},\
         {\"name\":\"initrd\",\"kind\":\"initrd\",\"size\":3145728},\
         {\"name\":\"linux\",\"kind\":\"raw\",\"size\":65536},\
         {\"name\":\"zephyr\",\"kind\":\"raw\",\"size\":300}]}\n"
    );
    let run = mica_at(&fake.socket, &["images", "extra"]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn an_unknown_or_missing_image_lists_the_images() {
    let fake = Fake::with_images();
    let run = mica_at(&fake.socket, &["create", "web", "--image", "nope"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: no guest image named nope: check --image; the images are: {EXAMPLE_IMAGES}\n"
        )
    );
    let run = mica_at(&fake.socket, &["create", "web"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: no guest image for web: name an image with --image IMAGE or a template \
             with --from VM; `images` lists them; the images are: {EXAMPLE_IMAGES}\n"
        )
    );
    let run = mica_at(&fake.socket, &["create", "web", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .starts_with("{\"error\":{\"code\":28,\"message\":\"no guest image for web"),
        "{run:?}"
    );
    assert!(run.stdout.contains("hello (raw, 8 KiB)"), "{run:?}");
    let run = mica_at(&fake.socket, &["create", "web", "--image", "hello"]);
    assert_eq!(run.code, 0, "{run:?}");
}
