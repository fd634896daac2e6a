//! Following the VMs' state changes with an `EventCursor` against the real
//! vm-manager ("from now", from the oldest, after the ring wrapped, after
//! a vm-manager restart, answers that do not fit), and each event as a
//! line of text and of JSON.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{
    EVENT_HISTORY, EventPage, GuestAccess, LastExit, Request, Response, StopCause, VmChange,
    VmEvent, VmState,
};
use ipc::wire_name;
use mica_mgmt::ReplyError;
use mica_mgmt::events::{EventBatch, EventCursor, EventLine, Gap, GapLine, write_event, write_gap};
use mica_mgmt::testing::{FakeManager, manager};

fn w(text: &str) -> ipc::WireName {
    wire_name(text).unwrap()
}

fn run(m: &mut FakeManager, request: Request) {
    let response = m.handle(request);
    assert!(
        matches!(response, Response::Ok | Response::Info(_)),
        "{response:?}"
    );
}

/// Polls until nothing more is waiting; every batch, in order.
fn poll(m: &mut FakeManager, cursor: &mut EventCursor) -> Vec<EventBatch> {
    let mut batches = Vec::new();
    loop {
        let batch = cursor.accept(m.handle(cursor.request())).unwrap();
        let more = batch.more;
        batches.push(batch);
        if !more {
            return batches;
        }
    }
}

fn lines(batches: &[EventBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b.events.iter())
        .map(|e| EventLine(e).to_string())
        .collect()
}

fn create(name: &str) -> Request {
    Request::Create {
        name: w(name),
        options: ipc::vm::CreateOptions::default(),
    }
}

#[test]
fn from_now_sees_only_what_happens_after_it_started() {
    let mut m = manager();
    run(&mut m, create("old"));
    let mut cursor = EventCursor::from_now();
    assert_eq!(lines(&poll(&mut m, &mut cursor)), Vec::<String>::new());
    run(&mut m, Request::Start { name: w("old") });
    run(&mut m, create("web"));
    run(&mut m, Request::Start { name: w("web") });
    run(&mut m, Request::Pause { name: w("web") });
    run(&mut m, Request::Resume { name: w("web") });
    run(
        &mut m,
        Request::Reset {
            name: w("web"),
            new_generation_id: true,
        },
    );
    run(&mut m, Request::Destroy { name: w("web") });
    let batches = poll(&mut m, &mut cursor);
    assert!(batches.iter().all(|b| b.gap.is_none()));
    assert_eq!(
        lines(&batches),
        [
            "1 old started",
            "2 web created",
            "3 web started",
            "4 web paused",
            "5 web resumed",
            "6 web reset with a new generation ID, now started",
            "7 web destroyed by the operator",
        ]
    );
    assert_eq!(lines(&poll(&mut m, &mut cursor)), Vec::<String>::new());
    let mut all = EventCursor::from_oldest();
    assert_eq!(lines(&poll(&mut m, &mut all))[0], "0 old created");
}

#[test]
fn a_reader_that_fell_behind_is_told_how_many_it_lost() {
    let mut m = manager();
    run(&mut m, create("web"));
    run(&mut m, Request::Start { name: w("web") });
    let mut cursor = EventCursor::from_oldest();
    let wrapped = EVENT_HISTORY / 2 + 3;
    for _ in 0..wrapped {
        run(&mut m, Request::Pause { name: w("web") });
        run(&mut m, Request::Resume { name: w("web") });
    }
    let batches = poll(&mut m, &mut cursor);
    let lost = 2 + 2 * wrapped as u64 - EVENT_HISTORY as u64;
    assert_eq!(batches[0].gap, Some(Gap::Lost(lost)));
    assert!(batches[1..].iter().all(|b| b.gap.is_none()));
    let seen = lines(&batches);
    assert_eq!(seen.len(), EVENT_HISTORY);
    assert_eq!(seen[0], format!("{lost} web paused"));
    assert_eq!(
        GapLine(Gap::Lost(lost)).to_string(),
        format!(
            "[mica: {lost} events were lost: the hypervisor keeps the last 32; mica list shows the VMs as they are]"
        )
    );
}

#[test]
fn a_restarted_vm_manager_is_noticed_and_read_from_its_start() {
    let mut m = manager();
    let mut cursor = EventCursor::from_now();
    poll(&mut m, &mut cursor);
    for name in ["a", "b", "c"] {
        run(&mut m, create(name));
    }
    assert_eq!(lines(&poll(&mut m, &mut cursor)).len(), 3);
    // Another vm-manager, whose numbering starts again: noticed however
    // many events it has recorded since.
    let mut restarted = manager();
    restarted.set_incarnation(1);
    for name in ["d", "e", "f", "g"] {
        run(&mut restarted, create(name));
    }
    let batches = poll(&mut restarted, &mut cursor);
    assert_eq!(batches[0].gap, Some(Gap::Restarted));
    assert_eq!(
        lines(&batches),
        ["0 d created", "1 e created", "2 f created", "3 g created"]
    );
    let mut json = String::new();
    write_gap(&mut json, Gap::Restarted).unwrap();
    assert_eq!(json, r#"{"event":"lost","count":null}"#);
}

#[test]
fn answers_that_do_not_follow_on_are_refused() {
    let event = |seq| VmEvent {
        seq,
        name: w("web"),
        change: VmChange::Started,
        state: VmState::Started,
    };
    let page = |seqs: &[u64], next, lost| {
        Response::Events(EventPage {
            events: seqs.iter().map(|&s| event(s)).collect(),
            next,
            lost,
            incarnation: 0,
        })
    };
    let at_five = || {
        let mut cursor = EventCursor::from_now();
        cursor.accept(page(&[], 5, 0)).unwrap();
        cursor
    };
    for bad in [
        page(&[6], 7, 0),
        page(&[5, 7], 8, 0),
        page(&[5], 5, 0),
        page(&[5], 6, 1),
        page(&[], 3, 0),
        Response::Ok,
    ] {
        let mut cursor = at_five();
        assert_eq!(
            cursor.accept(bad.clone()),
            Err(ReplyError::Unexpected),
            "{bad:?}"
        );
        assert_eq!(cursor.request(), Request::Events { from: 5 }, "unmoved");
    }
    let mut cursor = at_five();
    let batch = cursor.accept(page(&[7, 8], 9, 2)).unwrap();
    assert_eq!(batch.gap, Some(Gap::Lost(2)));
    assert_eq!(cursor.request(), Request::Events { from: 9 });
    assert_eq!(
        at_five().accept(Response::Err(ipc::Error::Malformed)),
        Err(ReplyError::Refused(ipc::Error::Malformed))
    );
}

#[test]
fn events_for_scripts_are_one_json_object_each() {
    let json = |change, state| {
        let event = VmEvent {
            seq: 12,
            name: w("web"),
            change,
            state,
        };
        let mut text = String::new();
        write_event(&mut text, &event).unwrap();
        (text, EventLine(&event).to_string())
    };
    assert_eq!(
        json(VmChange::Created, VmState::Created),
        (
            r#"{"seq":12,"vm":"web","event":"created","state":"created"}"#.into(),
            "12 web created".into()
        )
    );
    let fault = LastExit::Stopped {
        cause: StopCause::GuestPageFault {
            access: GuestAccess::Store,
            gpa: 0x2800_0000,
        },
        pc: 0x8020_0040,
    };
    let stopped = VmChange::Exited {
        exit: fault,
        uptime_ms: Some(1_500),
    };
    assert_eq!(
        json(stopped, VmState::PoweredOff),
        (
            concat!(
                r#"{"seq":12,"vm":"web","event":"stopped","state":"powered-off","#,
                r#""exit":{"kind":"stopped","detail":"stopped by Mica: store guest page fault at 0x28000000, no RAM or device there (pc 0x80200040)","cause":"guest_page_fault","pc":2149580864},"#,
                r#""uptime_ms":1500}"#
            )
            .into(),
            "12 web stopped by Mica: store guest page fault at 0x28000000, no RAM or device there (pc 0x80200040)".into()
        )
    );
    let rebooted = VmChange::Exited {
        exit: LastExit::Rebooted {
            warm: false,
            reason: 0,
        },
        uptime_ms: Some(9),
    };
    assert_eq!(
        json(rebooted, VmState::Started).1,
        "12 web rebooted by the guest, now started"
    );
    let shut_down = VmChange::Exited {
        exit: LastExit::ShutDown,
        uptime_ms: None,
    };
    assert_eq!(
        json(shut_down, VmState::PoweredOff),
        (
            concat!(
                r#"{"seq":12,"vm":"web","event":"shut_down","state":"powered-off","#,
                r#""exit":{"kind":"shut_down","detail":"shut down by the operator"},"uptime_ms":null}"#
            )
            .into(),
            "12 web shut down by the operator".into()
        )
    );
    let reset = VmChange::Reset {
        new_generation_id: false,
    };
    assert_eq!(
        json(reset, VmState::Paused),
        (
            r#"{"seq":12,"vm":"web","event":"reset","state":"paused","new_generation_id":false}"#
                .into(),
            "12 web reset, now paused".into()
        )
    );
    let mut gap = String::new();
    write_gap(&mut gap, Gap::Lost(3)).unwrap();
    assert_eq!(gap, r#"{"event":"lost","count":3}"#);
}
