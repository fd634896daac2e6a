//! `images`: parsing, the pager, sizes as people read them, the table,
//! the JSON, and the list a create refused for its image ends with.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{GuestImage, ImageKind, Request, Response};
use mica_mgmt::command::{ReplyError, VmCommand, wants_image_list};
use mica_mgmt::images::{ImageChoices, ImageSize, ImageTable};
use mica_mgmt::parse::{Surface, parse_vm};
use mica_mgmt::{Command, ImagesPager, json, parse_line};

fn image(name: &str, kind: ImageKind, size: u64) -> GuestImage {
    GuestImage {
        name: ipc::wire_name(name).unwrap(),
        kind,
        size,
    }
}

#[test]
fn images_parses_in_the_shell_and_the_cli() {
    let images = Some(Command::Vm(VmCommand::Images));
    assert_eq!(parse_line("images").unwrap(), images);
    assert_eq!(parse_line("vm images").unwrap(), images);
    assert_eq!(
        parse_vm(["images"], Surface::CLI).unwrap(),
        VmCommand::Images
    );
    assert_eq!(
        parse_line("images x").unwrap_err().to_string(),
        "unexpected argument \"x\" (usage: images)"
    );
    assert_eq!(
        parse_line("image").unwrap_err().to_string(),
        "unknown command \"image\" (did you mean \"images\"?); type help for the commands"
    );
    assert_eq!(VmCommand::Images.request(), Request::Images { from: 0 });
    assert_eq!(VmCommand::Images.target(), None);
}

#[test]
fn sizes_read_in_bytes_kib_or_mib() {
    let text = |bytes| ImageSize(bytes).to_string();
    assert_eq!(text(0), "0 bytes");
    assert_eq!(text(1023), "1023 bytes");
    assert_eq!(text(1024), "1 KiB");
    assert_eq!(text(8 * 1024), "8 KiB");
    assert_eq!(text(1536), "1.5 KiB");
    assert_eq!(text(1024 * 1024 - 1), "1024 KiB", "rounded");
    assert_eq!(text(24 * 1024 * 1024), "24 MiB");
    assert_eq!(text(3_565_158), "3.4 MiB");
    assert_eq!(text(u64::MAX), "17592186044416 MiB");
}

#[test]
fn the_table_and_the_json_show_every_image() {
    let images = [
        image("hello", ImageKind::Raw, 8192),
        image("linux-kernel", ImageKind::LinuxImage, 25_165_824),
        image("rd", ImageKind::Initrd, 700),
    ];
    assert_eq!(
        ImageTable(&images).to_string(),
        "\
NAME          KIND         SIZE
hello         raw          8 KiB
linux-kernel  Linux Image  24 MiB
rd            initrd       700 bytes
"
    );
    assert_eq!(
        ImageTable(&[]).to_string(),
        "the boot image holds no guest images\n"
    );
    let mut text = String::new();
    json::write_images(&mut text, &images[..2]).unwrap();
    assert_eq!(
        text,
        "{\"images\":[{\"name\":\"hello\",\"kind\":\"raw\",\"size\":8192},\
         {\"name\":\"linux-kernel\",\"kind\":\"linux_image\",\"size\":25165824}]}"
    );
    assert_eq!(
        ImageChoices(&images).to_string(),
        "; the images are: hello (raw, 8 KiB), linux-kernel (Linux Image, 24 MiB), \
         rd (initrd, 700 bytes)"
    );
    assert_eq!(
        ImageChoices(&[]).to_string(),
        "; the boot image holds no guest images"
    );
}

#[test]
fn only_a_create_refused_for_its_image_lists_the_images() {
    let create = parse_vm(["create", "web"], Surface::CLI).unwrap();
    let start = parse_vm(["start", "web"], Surface::CLI).unwrap();
    let refused = |e| ReplyError::Refused(e);
    assert!(wants_image_list(
        &create,
        &refused(ipc::Error::UnknownImage)
    ));
    assert!(wants_image_list(
        &create,
        &refused(ipc::Error::NoImageGiven)
    ));
    assert!(!wants_image_list(
        &create,
        &refused(ipc::Error::OutOfMemory)
    ));
    assert!(!wants_image_list(
        &start,
        &refused(ipc::Error::UnknownImage)
    ));
}

#[test]
fn the_pager_reads_every_image_and_refuses_answers_that_stand_still() {
    let mut manager = mica_mgmt::testing::manager_with_images();
    let mut pager = ImagesPager::new();
    let mut names = Vec::new();
    while let Some(request) = pager.next_request() {
        let page = pager.accept(manager.handle(request)).unwrap();
        names.extend(page.iter().map(|i| i.name.to_string()));
    }
    assert_eq!(names, ["hello", "vmlinux", "initrd", "linux", "zephyr"]);

    let page = |next| Response::Images {
        images: heapless::Vec::new(),
        next,
    };
    let mut pager = ImagesPager::new();
    assert!(pager.accept(page(Some(8))).is_ok());
    assert_eq!(pager.next_request(), Some(Request::Images { from: 8 }));
    assert_eq!(pager.accept(page(Some(8))), Err(ReplyError::Unexpected));
    assert_eq!(pager.next_request(), None);
    let mut pager = ImagesPager::new();
    assert_eq!(
        pager.accept(Response::List {
            vms: heapless::Vec::new(),
            next: None
        }),
        Err(ReplyError::Unexpected)
    );
}
