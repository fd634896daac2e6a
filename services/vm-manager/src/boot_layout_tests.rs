use super::*;
use proptest::prelude::*;

extern crate std;

const MIB: u64 = 1024 * 1024;

fn kernel(footprint: u64) -> LinuxImage {
    LinuxImage {
        text_offset: 2 * MIB,
        footprint,
        file_len: footprint,
    }
}

#[test]
fn debians_kernel_and_an_initrd_fit_128_mib() {
    let k = LinuxImage {
        text_offset: 0x20_0000,
        footprint: 0x1e6_c000,
        file_len: 31_167_488,
    };
    let plan = plan_linux(128 * MIB, &k, Some(10 * MIB)).unwrap();
    assert_eq!(plan.entry, 0x20_0000);
    assert_eq!(plan.kernel.end(), 0x20_0000 + 0x1e6_c000);
    // Right after the kernel's image_size, rounded up to 2 MiB.
    assert_eq!(plan.initrd.unwrap().offset, 0x220_0000);
    assert_eq!(plan.initrd.unwrap().len, 10 * MIB);
}

#[test]
fn a_kernel_that_runs_into_the_genid_page_is_refused() {
    let error = plan_linux(64 * MIB, &kernel(62 * MIB), None).unwrap_err();
    assert_eq!(
        error,
        LayoutError::KernelDoesNotFit {
            bytes: 62 * MIB,
            room: 62 * MIB - 8192,
            ram_mib: 64
        }
    );
    // Exactly up to the genid page is fine.
    assert!(plan_linux(64 * MIB, &kernel(62 * MIB - 8192), None).is_ok());
}

#[test]
fn an_initrd_that_does_not_fit_says_how_much_room_there_is() {
    let error = plan_linux(64 * MIB, &kernel(30 * MIB), Some(40 * MIB)).unwrap_err();
    assert_eq!(
        error,
        LayoutError::InitrdDoesNotFit {
            bytes: 40 * MIB,
            room: 32 * MIB - 8192,
            ram_mib: 64
        }
    );
    assert_eq!(
        std::format!("{error}"),
        "the initrd is 41943040 bytes but a VM with 64 MiB has room for 33546240 after the kernel: give it more with mem="
    );
    assert_eq!(
        plan_linux(64 * MIB, &kernel(MIB), Some(0)),
        Err(LayoutError::EmptyInitrd)
    );
}

#[test]
fn raw_images_keep_the_2_mib_offset() {
    let plan = plan_raw(64 * MIB, RAW_IMAGE_OFFSET, 4096).unwrap();
    assert_eq!(
        (plan.entry, plan.kernel.len, plan.initrd),
        (2 * MIB, 4096, None)
    );
    assert!(plan_raw(4 * MIB, RAW_IMAGE_OFFSET, 2 * MIB).is_err());
}

#[test]
fn a_small_dtb_keeps_the_top_page_and_a_large_one_goes_below_the_genid_page() {
    assert_eq!(place_dtb(64 * MIB, 4 * MIB, 4096), Ok(64 * MIB - 4096));
    assert_eq!(
        place_dtb(64 * MIB, 4 * MIB, 5000),
        Ok(64 * MIB - 8192 - 8192)
    );
    assert_eq!(
        place_dtb(64 * MIB, 64 * MIB - 8192 - 100, 5000),
        Err(LayoutError::DtbDoesNotFit {
            bytes: 5000,
            room: 0
        })
    );
}

proptest! {
    /// Whatever fits, the pieces are disjoint, aligned, inside RAM and
    /// clear of the generation-ID and top pages.
    #[test]
    fn placed_pieces_never_overlap_or_touch_the_reserved_pages(
        ram_mib in 2u64..=1024,
        footprint in 1u64..(1 << 31),
        initrd in proptest::option::of(1u64..(1 << 31)),
        dtb in 1u64..20_000,
    ) {
        let ram = ram_mib * MIB;
        let Ok(plan) = plan_linux(ram, &kernel(footprint), initrd) else {
            return Ok(());
        };
        prop_assert_eq!(plan.entry % KERNEL_ALIGN, 0);
        prop_assert!(plan.kernel.end() <= usable_end(ram));
        if let Some(i) = plan.initrd {
            prop_assert!(i.offset >= plan.kernel.end());
            prop_assert_eq!(i.offset % PAGE, 0);
            prop_assert!(i.end() <= usable_end(ram));
        }
        if let Ok(at) = place_dtb(ram, plan.used_end(), dtb) {
            prop_assert_eq!(at % 8, 0);
            let genid = (ram - GENID_FROM_END, ram - DTB_PAGE);
            let clear_of_genid = at + dtb <= genid.0 || at >= genid.1;
            prop_assert!(clear_of_genid);
            prop_assert!(at >= plan.used_end());
            prop_assert!(at + dtb <= ram);
        }
    }
}
