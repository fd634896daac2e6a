//! Arbitrary request sequences, with platform failures injected at random:
//! the manager never panics, answers fit on the wire, refusals change
//! nothing, and the table's invariants hold after every request.

mod common;

use std::collections::BTreeSet;

use common::*;
use ipc::vm::{CreateOptions, Request, Response, VmKind, VmState};
use proptest::prelude::*;

/// Six slots: the two static VMs of `SCENARIO` and four dynamic ones.
const MAX: usize = 6;

const NAMES: [&str; 10] = ["sos", "rtvm", "a", "b", "c", "d", "e", "f", "bad name", ""];

const FAILABLE: [CallKind; 11] = [
    CallKind::CreateAddressSpace,
    CallKind::LoadImage,
    CallKind::CloneMemory,
    CallKind::CreateVcpus,
    CallKind::RegisterIoreq,
    CallKind::RegisterDevices,
    CallKind::SetGenerationId,
    CallKind::Start,
    CallKind::Pause,
    CallKind::Resume,
    CallKind::Reset,
];

fn name() -> impl Strategy<Value = ipc::WireName> {
    prop::sample::select(NAMES.to_vec()).prop_map(w)
}

fn options() -> impl Strategy<Value = CreateOptions> {
    (
        prop::option::weighted(0.2, name()),
        prop::option::weighted(
            0.2,
            prop::sample::select(vec!["guest", "linux", "x y"]).prop_map(w),
        ),
        prop::option::weighted(0.2, prop_oneof![Just(0u32), 1u32..2048]),
        prop::option::weighted(0.3, any::<u8>()),
    )
        .prop_map(|(template, image, mem_mib, vcpus)| CreateOptions {
            kernel: None,
            initrd: None,
            cmdline: None,
            disk: None,
            template,
            image,
            mem_mib,
            vcpus,
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        3 => (name(), options()).prop_map(|(name, options)| Request::Create { name, options }),
        2 => name().prop_map(|name| Request::Start { name }),
        2 => name().prop_map(|name| Request::Pause { name }),
        1 => name().prop_map(|name| Request::Resume { name }),
        1 => (name(), any::<bool>()).prop_map(|(name, new_generation_id)| Request::Reset {
            name,
            new_generation_id
        }),
        1 => name().prop_map(|name| Request::Shutdown { name }),
        1 => name().prop_map(|name| Request::Destroy { name }),
        1 => (name(), name()).prop_map(|(source, name)| Request::Clone { source, name }),
        1 => prop_oneof![0u16..8, any::<u16>()].prop_map(|from| Request::List { from }),
        1 => name().prop_map(|name| Request::Info { name }),
    ]
}

/// A step: maybe make one platform call fail, then send a request.
fn step() -> impl Strategy<Value = (Option<CallKind>, Request)> {
    (
        prop::option::weighted(0.15, prop::sample::select(FAILABLE.to_vec())),
        request(),
    )
}

fn check_invariants(m: &mut Manager<MAX>) {
    let all = list_all(m);
    assert!(all.len() <= MAX);
    let names: BTreeSet<&str> = all.iter().map(|vm| vm.name.as_str()).collect();
    assert_eq!(names.len(), all.len(), "names are unique: {all:?}");
    assert!(
        names.contains("sos") && names.contains("rtvm"),
        "static VMs are always listed"
    );
    for vm in &all {
        if vm.kind == VmKind::Dynamic {
            assert_ne!(
                vm.state,
                VmState::PoweredOff,
                "a dynamic VM lingers powered off"
            );
        }
        let live = vm.state != VmState::PoweredOff;
        assert_eq!(m.platform().holds_anything(vm.id.0), live, "{vm:?}");
        assert_eq!(
            m.platform().running.contains(&vm.id.0),
            vm.state == VmState::Started
        );
        assert_eq!(vm.generation_id == [0; 16], !live, "{vm:?}");
        if live {
            let told = m.platform().generation_ids.get(&vm.id.0).copied();
            assert_eq!(
                told,
                Some(u128::from_le_bytes(vm.generation_id)),
                "platform knows the ID"
            );
        }
    }
    let listed: BTreeSet<u16> = all.iter().map(|vm| vm.id.0).collect();
    for (slot, _) in &m.platform().held {
        assert!(
            listed.contains(slot),
            "slot {slot} holds resources but is not listed"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_requests_keep_the_table_consistent(steps in prop::collection::vec(step(), 1..60)) {
        let mut m = Manager::<MAX>::new(SCENARIO, FakePlatform::default(), CountingEntropy::default()).unwrap();
        let mut buf = [0u8; ipc::MAX_MESSAGE_SIZE];
        for (failure, request) in steps {
            m.platform_mut().failures.clear();
            if let Some(kind) = failure {
                m.platform_mut().fail_next(kind, ipc::Error::KernelRefused);
            }
            let before = list_all(&mut m);
            let response = m.handle(request.clone());
            prop_assert!(ipc::encode(&response, &mut buf).is_ok(), "{:?} does not fit", response);
            let after = list_all(&mut m);
            if let Response::Err(error) = response {
                // Only a reset whose restart fails may change the state, and
                // a reset the platform refuses after taking a new generation
                // ID keeps that ID; nothing else may change on a refusal.
                let restart_failed = failure == Some(CallKind::Start)
                    && matches!(request, Request::Reset { .. });
                let new_id_kept = failure == Some(CallKind::Reset)
                    && matches!(request, Request::Reset { new_generation_id: true, .. });
                let strip_ids = |vms: &[ipc::vm::VmInfo]| -> Vec<ipc::vm::VmInfo> {
                    vms.iter().cloned().map(|mut vm| { vm.generation_id = [0; 16]; vm }).collect()
                };
                if new_id_kept {
                    prop_assert_eq!(strip_ids(&before), strip_ids(&after));
                } else if !restart_failed {
                    prop_assert_eq!(&before, &after, "{:?} refused with {:?} but changed state", request, error);
                }
            }
            check_invariants(&mut m);
        }
    }
}
