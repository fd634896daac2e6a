//! A failure at any platform step leaves no trace: creation and clone undo
//! every acquired resource in reverse order; a refused start, pause, resume
//! or reset changes nothing.

mod common;

use common::*;
use ipc::Error;
use ipc::vm::{CreateOptions, VmState};

/// What must hold after a failed creation of `name`, attempted in `slot`.
/// `failed` is the step that was made to fail (it acquired nothing).
fn assert_no_trace(m: &mut Manager, name: &str, slot: u16, calls_before: usize, failed: CallKind) {
    assert_eq!(
        info(m, name)
            .map(|i| i.state)
            .unwrap_or(VmState::PoweredOff),
        VmState::PoweredOff
    );
    assert!(
        !m.platform().holds_anything(slot),
        "slot {slot} still holds {:?}",
        m.platform().held
    );
    assert!(!m.platform().running.contains(&slot));
    assert!(!m.platform().generation_ids.contains_key(&slot));
    // The undo ran in reverse order of acquisition.
    let new_calls: Vec<CallKind> = m.platform().calls[calls_before..]
        .iter()
        .filter(|c| c.vm == slot)
        .map(|c| c.kind)
        .collect();
    let acquired: Vec<CallKind> = new_calls
        .iter()
        .copied()
        .filter(|k| *k != failed)
        .filter(|k| {
            matches!(
                k,
                CallKind::CreateAddressSpace
                    | CallKind::CreateVcpus
                    | CallKind::RegisterIoreq
                    | CallKind::RegisterDevices
            )
        })
        .collect();
    let released: Vec<CallKind> = new_calls
        .iter()
        .copied()
        .filter(|k| {
            matches!(
                k,
                CallKind::FreeAddressSpace
                    | CallKind::DestroyVcpus
                    | CallKind::UnregisterIoreq
                    | CallKind::UnregisterDevices
            )
        })
        .collect();
    let expected_release: Vec<CallKind> = acquired
        .iter()
        .rev()
        .map(|k| match k {
            CallKind::CreateAddressSpace => CallKind::FreeAddressSpace,
            CallKind::CreateVcpus => CallKind::DestroyVcpus,
            CallKind::RegisterIoreq => CallKind::UnregisterIoreq,
            _ => CallKind::UnregisterDevices,
        })
        .collect();
    assert_eq!(released, expected_release, "calls: {new_calls:?}");
}

#[test]
fn a_failed_dynamic_create_at_any_step_leaves_no_trace() {
    for (index, step) in CREATE_STEPS.iter().enumerate() {
        let mut m = manager();
        let error = Error::KernelRefused;
        m.platform_mut().fail_next(*step, error);
        expect_err(&mut m, create("web"), error);
        let calls = m.platform().calls_for(2);
        assert_eq!(
            &calls[..=index],
            &CREATE_STEPS[..=index],
            "steps run in order"
        );
        assert_no_trace(&mut m, "web", 2, 0, *step);
        // The slot and the name are free: the same create now succeeds there.
        let again = expect_info(&mut m, create("web"));
        assert_eq!(again.id.0, 2, "failure at {step:?}");
        assert_eq!(again.state, VmState::Created);
    }
}

#[test]
fn a_failed_static_create_at_any_step_leaves_it_powered_off() {
    for step in CREATE_STEPS {
        let mut m = manager();
        m.platform_mut().fail_next(step, Error::OutOfMemory);
        expect_err(&mut m, create("rtvm"), Error::OutOfMemory);
        assert_no_trace(&mut m, "rtvm", 1, 0, step);
        assert_eq!(info(&mut m, "rtvm").unwrap().generation_id, [0; 16]);
        assert_eq!(
            expect_info(&mut m, create("rtvm")).state,
            VmState::Created,
            "failure at {step:?}"
        );
    }
}

#[test]
fn a_failed_clone_at_any_step_leaves_no_trace_and_the_source_untouched() {
    for step in CLONE_STEPS {
        let mut m = manager();
        expect_info(&mut m, create("src"));
        expect_ok(&mut m, start("src"));
        expect_ok(&mut m, pause("src"));
        let before = m.platform().calls.len();
        m.platform_mut().fail_next(step, Error::KernelRefused);
        expect_err(&mut m, clone_vm("src", "copy"), Error::KernelRefused);
        assert_no_trace(&mut m, "copy", 3, before, step);
        assert_eq!(info(&mut m, "copy"), None);
        assert_eq!(state(&mut m, "src"), VmState::Paused);
        assert!(
            m.platform().holds_anything(2),
            "the source keeps its resources"
        );
        assert_eq!(
            expect_info(&mut m, clone_vm("src", "copy")).id.0,
            3,
            "failure at {step:?}"
        );
    }
}

#[test]
fn platform_reported_errors_pass_through_unchanged() {
    for error in [
        Error::OutOfMemory,
        Error::UnknownImage,
        Error::KernelRefused,
    ] {
        let mut m = manager();
        m.platform_mut().fail_next(CallKind::LoadImage, error);
        expect_err(
            &mut m,
            create_with(
                "web",
                CreateOptions {
                    mem_mib: Some(8),
                    ..CreateOptions::default()
                },
            ),
            error,
        );
    }
}

#[test]
fn a_refused_start_pause_or_resume_changes_nothing() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    m.platform_mut()
        .fail_next(CallKind::Start, Error::KernelRefused);
    expect_err(&mut m, start("web"), Error::KernelRefused);
    assert_eq!(state(&mut m, "web"), VmState::Created);
    expect_ok(&mut m, start("web"));

    m.platform_mut()
        .fail_next(CallKind::Pause, Error::KernelRefused);
    expect_err(&mut m, pause("web"), Error::KernelRefused);
    assert_eq!(state(&mut m, "web"), VmState::Started);
    expect_ok(&mut m, pause("web"));

    m.platform_mut()
        .fail_next(CallKind::Resume, Error::KernelRefused);
    expect_err(&mut m, resume("web"), Error::KernelRefused);
    assert_eq!(state(&mut m, "web"), VmState::Paused);
    expect_ok(&mut m, resume("web"));
    assert_eq!(state(&mut m, "web"), VmState::Started);
}

#[test]
fn a_refused_reset_keeps_the_state_and_a_refused_new_id_keeps_the_id() {
    let mut m = manager();
    let created = expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));

    m.platform_mut()
        .fail_next(CallKind::Reset, Error::KernelRefused);
    expect_err(&mut m, reset("web", false), Error::KernelRefused);
    assert_eq!(state(&mut m, "web"), VmState::Started);

    m.platform_mut()
        .fail_next(CallKind::SetGenerationId, Error::KernelRefused);
    expect_err(&mut m, reset("web", true), Error::KernelRefused);
    let now = info(&mut m, "web").unwrap();
    assert_eq!(now.state, VmState::Started);
    assert_eq!(now.generation_id, created.generation_id);
    assert_eq!(
        m.platform().count(CallKind::Reset),
        1,
        "no reset after the refused ID"
    );
}

#[test]
fn a_reset_whose_restart_fails_leaves_the_vm_created() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    m.platform_mut()
        .fail_next(CallKind::Start, Error::KernelRefused);
    expect_err(&mut m, reset("web", false), Error::KernelRefused);
    assert_eq!(state(&mut m, "web"), VmState::Created);
    expect_ok(&mut m, start("web"));
}

#[test]
fn a_shutdown_whose_pause_fails_changes_nothing() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    m.platform_mut()
        .fail_next(CallKind::Pause, Error::KernelRefused);
    expect_err(&mut m, shutdown("web"), Error::KernelRefused);
    assert_eq!(state(&mut m, "web"), VmState::Started);
    assert!(m.platform().holds_anything(2));
    // Destroy does not ask the VM to stop first, so it still works.
    expect_ok(&mut m, destroy("web"));
    assert!(!m.platform().holds_anything(2));
}

#[test]
fn a_refused_reset_after_a_new_id_keeps_the_new_id_the_guest_was_told() {
    let mut m = manager();
    let created = expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    m.platform_mut()
        .fail_next(CallKind::Reset, Error::KernelRefused);
    expect_err(&mut m, reset("web", true), Error::KernelRefused);
    let now = info(&mut m, "web").unwrap();
    assert_eq!(now.state, VmState::Started, "the VM was not reset");
    assert_ne!(now.generation_id, created.generation_id);
    // The manager's record and the guest-visible device agree.
    assert_eq!(
        m.platform().generation_ids.get(&2).copied(),
        Some(u128::from_le_bytes(now.generation_id))
    );
}
