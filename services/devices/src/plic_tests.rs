//! The PLIC driven the way Linux's `irq-sifive-plic` drives it: at probe
//! every context's enables cleared and threshold 0; unmask = priority 1 and
//! the context's enable bit; the handler claims until 0, handles, and
//! completes each source.

use super::*;
use crate::testing::TestEnv;

const CTX0_ENABLE: u64 = ENABLE_BASE;
const CTX0_THRESHOLD: u64 = CONTEXT_BASE;
const CTX0_CLAIM: u64 = CONTEXT_BASE + 4;
const CTX1_CLAIM: u64 = CONTEXT_BASE + CONTEXT_STRIDE + 4;
const VMGENID_IRQ: u32 = 12;
const UART_IRQ: u32 = 10;

fn read(plic: &mut Plic, offset: u64) -> u64 {
    plic.read(offset, AccessSize::Word, &mut TestEnv::default().env())
        .unwrap()
}

fn write(plic: &mut Plic, offset: u64, value: u64) {
    plic.write(
        offset,
        AccessSize::Word,
        value,
        &mut TestEnv::default().env(),
    )
    .unwrap();
}

/// Linux's probe for `contexts` contexts, then `irq_unmask` + enable of
/// each source in `sources` on context 0.
fn probed(sources: &[u32]) -> Plic {
    let mut plic = Plic::new();
    for context in 0..PLIC_CONTEXTS as u64 {
        for word in 0..WORDS as u64 {
            write(
                &mut plic,
                ENABLE_BASE + context * ENABLE_STRIDE + 4 * word,
                0,
            );
        }
        write(&mut plic, CONTEXT_BASE + context * CONTEXT_STRIDE, 0);
    }
    for &source in sources {
        write(&mut plic, 4 * u64::from(source), 1);
        let word = u64::from(source / 32) * 4;
        let bits = read(&mut plic, CTX0_ENABLE + word);
        write(&mut plic, CTX0_ENABLE + word, bits | 1 << (source % 32));
    }
    plic
}

#[test]
fn a_raised_enabled_line_interrupts_context_0_until_claimed() {
    let mut plic = probed(&[VMGENID_IRQ]);
    assert!(!plic.external_level(0));
    plic.set_line(VMGENID_IRQ, true);
    assert!(plic.external_level(0));
    assert!(!plic.external_level(1), "context 1 did not enable it");
    assert_eq!(read(&mut plic, PENDING_BASE), 1 << VMGENID_IRQ);
    assert_eq!(read(&mut plic, CTX0_CLAIM), u64::from(VMGENID_IRQ));
    assert!(!plic.external_level(0), "claimed: no longer pending");
    assert_eq!(read(&mut plic, CTX0_CLAIM), 0, "the handler's loop ends");
    // The guest acknowledges the device (line lowered), then completes.
    plic.set_line(VMGENID_IRQ, false);
    write(&mut plic, CTX0_CLAIM, u64::from(VMGENID_IRQ));
    assert!(!plic.external_level(0));
    assert_eq!(read(&mut plic, PENDING_BASE), 0);
}

#[test]
fn a_line_still_raised_at_completion_interrupts_again() {
    let mut plic = probed(&[VMGENID_IRQ]);
    plic.set_line(VMGENID_IRQ, true);
    assert_eq!(plic.claim(0), VMGENID_IRQ);
    plic.set_line(VMGENID_IRQ, true);
    assert!(!plic.external_level(0), "no new request while claimed");
    plic.complete(0, VMGENID_IRQ);
    assert!(plic.external_level(0), "level-triggered: pending again");
}

/// PLIC spec: the gateway's request stays pending until claimed, so a
/// pulse (a notification) is delivered once, and a lowered line is not
/// pending again after completion.
#[test]
fn a_pulse_stays_pending_until_claimed_and_only_once() {
    let mut plic = probed(&[UART_IRQ]);
    plic.set_line(UART_IRQ, true);
    plic.set_line(UART_IRQ, false);
    assert!(plic.external_level(0));
    assert_eq!(plic.claim(0), UART_IRQ);
    assert!(!plic.external_level(0));
    plic.complete(0, UART_IRQ);
    assert!(!plic.external_level(0), "the line is down: no new request");
    assert_eq!(plic.claim(0), 0);
}

#[test]
fn masked_sources_do_not_interrupt() {
    // Enabled but priority 0 (Linux's irq_mask): never delivered.
    let mut plic = probed(&[VMGENID_IRQ]);
    write(&mut plic, 4 * u64::from(VMGENID_IRQ), 0);
    plic.set_line(VMGENID_IRQ, true);
    assert!(!plic.external_level(0));
    assert!(plic.is_pending(VMGENID_IRQ), "still pending at the gateway");
    // Unmasked again: delivered.
    write(&mut plic, 4 * u64::from(VMGENID_IRQ), 1);
    assert!(plic.external_level(0));
    // A threshold at or above the priority holds it back.
    write(&mut plic, CTX0_THRESHOLD, 1);
    assert!(!plic.external_level(0));
    assert_eq!(read(&mut plic, CTX1_CLAIM), 0);
}

#[test]
fn the_highest_priority_then_the_lowest_number_is_claimed_first() {
    let mut plic = probed(&[UART_IRQ, VMGENID_IRQ, 40]);
    for source in [UART_IRQ, VMGENID_IRQ, 40] {
        plic.set_line(source, true);
    }
    write(&mut plic, 4 * 40, 5);
    assert_eq!(plic.claim(0), 40, "highest priority");
    assert_eq!(plic.claim(0), UART_IRQ, "equal priority: lowest number");
    assert_eq!(plic.claim(0), VMGENID_IRQ);
    assert_eq!(plic.claim(0), 0);
}

#[test]
fn completing_a_source_not_enabled_for_the_context_is_ignored() {
    let mut plic = probed(&[VMGENID_IRQ]);
    plic.set_line(VMGENID_IRQ, true);
    assert_eq!(plic.claim(0), VMGENID_IRQ);
    write(&mut plic, CTX1_CLAIM, u64::from(VMGENID_IRQ));
    plic.complete(0, 0);
    plic.complete(0, 1000);
    assert!(!plic.external_level(0), "still claimed");
    plic.complete(0, VMGENID_IRQ);
    assert!(plic.external_level(0));
}

#[test]
fn registers_keep_only_their_defined_bits() {
    let mut plic = Plic::new();
    write(&mut plic, 0, 7);
    assert_eq!(read(&mut plic, 0), 0, "source 0 has no priority");
    write(&mut plic, 4, 0xffff_ffff);
    assert_eq!(read(&mut plic, 4), u64::from(MAX_PRIORITY));
    write(&mut plic, CTX0_ENABLE, 0xffff_ffff);
    assert_eq!(
        read(&mut plic, CTX0_ENABLE),
        0xffff_fffe,
        "source 0 hardwired"
    );
    write(&mut plic, PENDING_BASE, 0xffff_ffff);
    assert_eq!(read(&mut plic, PENDING_BASE), 0, "pending is read-only");
    write(&mut plic, CTX0_THRESHOLD, 0xff);
    assert_eq!(read(&mut plic, CTX0_THRESHOLD), u64::from(MAX_PRIORITY));
    assert_eq!(read(&mut plic, CONTEXT_BASE + 8), 0, "reserved reads 0");
    assert_eq!(read(&mut plic, PLIC_SIZE - 4), 0, "absent context reads 0");
    plic.set_line(0, true);
    plic.set_line(u32::try_from(PLIC_SOURCES).unwrap(), true);
    assert_eq!(
        read(&mut plic, PENDING_BASE),
        0,
        "unwired lines change nothing"
    );
}

#[test]
fn only_aligned_word_accesses_inside_the_window_are_taken() {
    let mut plic = Plic::new();
    let mut env = TestEnv::default();
    assert_eq!(
        plic.read(0, AccessSize::Double, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        plic.read(2, AccessSize::Word, &mut env.env()),
        Err(DeviceError::Unaligned)
    );
    assert_eq!(
        plic.write(0, AccessSize::Byte, 1, &mut env.env()),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        plic.read(PLIC_SIZE, AccessSize::Word, &mut env.env()),
        Err(DeviceError::OutOfRange)
    );
    assert!(!plic.irq_level());
}

/// A context's registers at `context` (enable word 0, threshold, claim).
fn context_registers(context: u64) -> (u64, u64, u64) {
    let base = CONTEXT_BASE + context * CONTEXT_STRIDE;
    (ENABLE_BASE + context * ENABLE_STRIDE, base, base + 4)
}

#[test]
fn every_vcpu_has_a_context_with_its_own_enables_threshold_and_claim() {
    assert_eq!(PLIC_CONTEXTS, ipc::syscall::MAX_VCPUS);
    let mut plic = Plic::new();
    write(&mut plic, 4 * u64::from(UART_IRQ), 1);
    let last = PLIC_CONTEXTS as u64 - 1;
    let (enable, threshold, claim) = context_registers(last);
    write(&mut plic, enable, 1 << UART_IRQ);
    plic.set_line(UART_IRQ, true);
    assert_eq!(plic.external_levels(), 1 << last, "the last context only");
    write(&mut plic, threshold, 1);
    assert_eq!(plic.external_levels(), 0, "its threshold holds it back");
    write(&mut plic, threshold, 0);
    assert_eq!(read(&mut plic, claim), u64::from(UART_IRQ));
    assert_eq!(plic.external_levels(), 0);
    plic.set_line(UART_IRQ, false);
    write(&mut plic, claim, u64::from(UART_IRQ));
    assert_eq!(read(&mut plic, claim), 0);
    let (beyond, _, beyond_claim) = context_registers(PLIC_CONTEXTS as u64);
    write(&mut plic, beyond, 1 << UART_IRQ);
    assert_eq!(
        read(&mut plic, beyond),
        0,
        "no context past the last vCPU's"
    );
    assert_eq!(read(&mut plic, beyond_claim), 0);
}

#[test]
fn a_source_several_contexts_enable_goes_to_the_first_claim() {
    let mut plic = probed(&[VMGENID_IRQ]);
    let (enable, _, claim) = context_registers(3);
    write(&mut plic, enable, 1 << VMGENID_IRQ);
    plic.set_line(VMGENID_IRQ, true);
    assert_eq!(plic.external_levels(), 1 << 3 | 1, "contexts 0 and 3");
    assert_eq!(read(&mut plic, claim), u64::from(VMGENID_IRQ));
    assert_eq!(plic.external_levels(), 0, "claimed: neither is raised");
    assert_eq!(plic.claim(0), 0);
    // Either context that enables it may complete it; the line is still
    // up, so both are interrupted again.
    plic.complete(0, VMGENID_IRQ);
    assert_eq!(plic.external_levels(), 1 << 3 | 1);
}

#[test]
fn every_contexts_registers_are_kept_in_one_record() {
    let mut plic = Plic::new();
    for source in 1..PLIC_SOURCES as u64 {
        write(&mut plic, 4 * source, source % 8);
    }
    for context in 0..PLIC_CONTEXTS as u64 {
        for word in 0..WORDS as u64 {
            let enable = ENABLE_BASE + context * ENABLE_STRIDE + 4 * word;
            write(&mut plic, enable, 0x0101_0101 << context);
        }
        write(
            &mut plic,
            CONTEXT_BASE + context * CONTEXT_STRIDE,
            context % 8,
        );
    }
    let mut record = [0u8; crate::persist::MAX_PAYLOAD];
    let len = plic.save(&mut record);
    assert_eq!(len, SAVED_BYTES);
    let mut restored = Plic::new();
    assert!(restored.restore(&record[..len]));
    assert_eq!(restored, plic);
    // A record of a PLIC with fewer contexts (or a cut one) is refused:
    // the PLIC stays at reset rather than taking half of it.
    let mut fresh = Plic::new();
    let four_contexts = PLIC_SOURCES + 4 * (4 * WORDS + 4);
    assert!(!fresh.restore(&record[..four_contexts]));
    assert!(!fresh.restore(&record[..len - 1]));
    assert_eq!(fresh, Plic::new());
}
