//! `Images`: the boot image's guest images, page by page, and what a
//! create that names no image is told.

mod common;

use common::*;
use ipc::Error;
use ipc::vm::{CreateOptions, GuestImage, IMAGES_PAGE, ImageKind, Request, Response};

fn image(name: &str, kind: ImageKind, size: u64) -> GuestImage {
    GuestImage {
        name: w(name),
        kind,
        size,
    }
}

fn page(m: &mut Manager, from: u16) -> (Vec<GuestImage>, Option<u16>) {
    match m.handle(Request::Images { from }) {
        Response::Images { images, next } => (images.to_vec(), next),
        other => panic!("expected an images page, got {other:?}"),
    }
}

#[test]
fn images_are_listed_in_boot_image_order_a_page_at_a_time() {
    let mut m = manager();
    assert_eq!(page(&mut m, 0), (vec![], None), "no images, no pages");
    let all: Vec<GuestImage> = (0..IMAGES_PAGE as u64 + 3)
        .map(|i| image(&format!("img{i}"), ImageKind::Raw, 4096 * (i + 1)))
        .collect();
    m.platform_mut().guest_images = all.clone();
    let second = u16::try_from(IMAGES_PAGE).unwrap();
    let (first, next) = page(&mut m, 0);
    assert_eq!(first, all[..IMAGES_PAGE]);
    assert_eq!(next, Some(second));
    let (rest, next) = page(&mut m, second);
    assert_eq!(rest, all[IMAGES_PAGE..]);
    assert_eq!(next, None);
    assert_eq!(page(&mut m, 500), (vec![], None), "past the end");
    assert!(m.platform().calls.is_empty(), "listing touches no VM");
}

#[test]
fn the_scenario_says_how_an_image_it_boots_is_used() {
    let mut m = manager();
    // sos boots "linux" as a raw image in the test scenario; Mica's test
    // guests carry a Linux Image header, so the bytes alone say kernel.
    m.platform_mut().guest_images = vec![
        image("linux", ImageKind::LinuxImage, 1 << 20),
        image("other", ImageKind::LinuxImage, 1 << 20),
        image("rd", ImageKind::Initrd, 10),
    ];
    let (images, _) = page(&mut m, 0);
    let kinds: Vec<ImageKind> = images.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [ImageKind::Raw, ImageKind::LinuxImage, ImageKind::Initrd],
        "a static VM's raw image is raw; the others keep their bytes' kind"
    );
}

#[test]
fn a_page_that_is_exactly_full_ends_the_list() {
    let mut m = manager();
    let all: Vec<GuestImage> = (0..IMAGES_PAGE)
        .map(|i| image(&format!("i{i}"), ImageKind::Initrd, 1))
        .collect();
    m.platform_mut().guest_images = all.clone();
    assert_eq!(page(&mut m, 0), (all, None));
}

#[test]
fn a_dynamic_create_with_nothing_to_boot_says_so() {
    let mut m = manager().with_defaults(vm_manager::DynamicDefaults::default());
    match m.handle(Request::Create {
        name: w("web"),
        options: CreateOptions::default(),
    }) {
        Response::Err(Error::NoImageGiven) => {}
        other => panic!("expected NoImageGiven, got {other:?}"),
    }
    assert!(m.platform().calls.is_empty(), "nothing was made");
    // A static VM needs no image: its configuration has one.
    match m.handle(Request::Create {
        name: w("sos"),
        options: CreateOptions::default(),
    }) {
        Response::Info(info) => assert_eq!(info.name.as_str(), "sos"),
        other => panic!("expected the static VM, got {other:?}"),
    }
}
