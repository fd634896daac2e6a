//! Unit tests of the endpoint state machine.

use super::*;

fn t(slot: usize) -> TaskId {
    TaskId::new(slot, 1).unwrap()
}

fn one(transfer: Transfer, next: Next) -> Outcome {
    Outcome {
        transfers: [Some(transfer), None],
        next,
    }
}

fn woke(task: TaskId) -> Next {
    Next::Continue {
        woken: [Some(task), None],
    }
}

const CLIENT: usize = 1;
const SERVER: usize = 2;

#[test]
fn call_to_a_waiting_receiver_switches_directly() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    assert_eq!(
        e.recv(t(SERVER), ep).unwrap(),
        Outcome {
            transfers: [None, None],
            next: Next::Block(Wait::Recv)
        }
    );
    let out = e
        .deliver(t(CLIENT), ep, Badge(9), 24, Delivery::Call)
        .unwrap();
    let transfer = Transfer {
        from: t(CLIENT),
        to: t(SERVER),
        badge: Badge(9),
        len: 24,
    };
    assert_eq!(
        out,
        one(
            transfer,
            Next::SwitchTo {
                to: t(SERVER),
                waits: Wait::Reply
            }
        )
    );
    assert_eq!(e.waiting(t(CLIENT)), Some(Wait::Reply));
    assert_eq!(e.waiting(t(SERVER)), None);
}

#[test]
fn call_without_receiver_queues_the_caller_until_recv() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    assert_eq!(
        e.deliver(t(CLIENT), ep, Badge(4), 8, Delivery::Call)
            .unwrap()
            .next,
        Next::Block(Wait::Send)
    );
    assert_eq!(e.queued_on(t(CLIENT)), Some(ep));
    let out = e.recv(t(SERVER), ep).unwrap();
    let transfer = Transfer {
        from: t(CLIENT),
        to: t(SERVER),
        badge: Badge(4),
        len: 8,
    };
    assert_eq!(
        out,
        one(
            transfer,
            Next::Continue {
                woken: [None, None]
            }
        )
    );
    assert_eq!(e.waiting(t(CLIENT)), Some(Wait::Reply));
    assert_eq!(e.queued_on(t(CLIENT)), None);
}

#[test]
fn reply_wakes_the_caller_with_the_reply_length() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::Call)
        .unwrap();
    e.recv(t(SERVER), ep).unwrap();
    let out = e.reply(t(SERVER), 100).unwrap();
    let transfer = Transfer {
        from: t(SERVER),
        to: t(CLIENT),
        badge: Badge::NONE,
        len: 100,
    };
    assert_eq!(out, one(transfer, woke(t(CLIENT))));
    assert_eq!(e.waiting(t(CLIENT)), None);
    assert_eq!(e.reply(t(SERVER), 0), Err(IpcError::NoReplyOwed));
}

#[test]
fn senders_are_served_in_fifo_order_with_their_badges() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    for (slot, badge) in [(3, 30), (4, 40), (5, 50)] {
        e.deliver(t(slot), ep, Badge(badge), 1, Delivery::Call)
            .unwrap();
    }
    assert_eq!(e.queue_len(ep), 3);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = e.recv(t(SERVER), ep).unwrap();
        let tr = out.transfers().next().unwrap();
        seen.push((tr.from.slot(), tr.badge.0));
        e.reply(t(SERVER), 0).unwrap();
    }
    assert_eq!(seen, [(3, 30), (4, 40), (5, 50)]);
}

#[test]
fn several_receivers_queue_and_are_served_in_order() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(10), ep).unwrap();
    e.recv(t(11), ep).unwrap();
    assert_eq!(
        e.deliver(t(1), ep, Badge(1), 0, Delivery::Call)
            .unwrap()
            .next,
        Next::SwitchTo {
            to: t(10),
            waits: Wait::Reply
        }
    );
    assert_eq!(
        e.deliver(t(2), ep, Badge(2), 0, Delivery::Call)
            .unwrap()
            .next,
        Next::SwitchTo {
            to: t(11),
            waits: Wait::Reply
        }
    );
    assert_eq!(
        e.deliver(t(3), ep, Badge(3), 0, Delivery::Call)
            .unwrap()
            .next,
        Next::Block(Wait::Send)
    );
}

#[test]
fn send_does_not_wait_for_a_reply() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(SERVER), ep).unwrap();
    let out = e
        .deliver(t(CLIENT), ep, Badge(2), 3, Delivery::Send)
        .unwrap();
    assert_eq!(out.next, woke(t(SERVER)));
    assert_eq!(e.waiting(t(CLIENT)), None);
    assert_eq!(
        e.deliver(t(CLIENT), ep, Badge(2), 3, Delivery::Send)
            .unwrap()
            .next,
        Next::Block(Wait::Send)
    );
    assert_eq!(e.recv(t(SERVER), ep).unwrap().next, woke(t(CLIENT)));
    assert_eq!(e.reply(t(SERVER), 0), Err(IpcError::NoReplyOwed));
}

#[test]
fn reply_recv_with_nothing_queued_is_the_fastpath_back_to_the_caller() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::Call)
        .unwrap();
    e.recv(t(SERVER), ep).unwrap();
    let r = e.reply_recv(t(SERVER), ep, 16).unwrap();
    assert_eq!(r.reply, ReplyStatus::Delivered);
    let transfer = Transfer {
        from: t(SERVER),
        to: t(CLIENT),
        badge: Badge::NONE,
        len: 16,
    };
    assert_eq!(
        r.outcome,
        one(
            transfer,
            Next::SwitchTo {
                to: t(CLIENT),
                waits: Wait::Recv
            }
        )
    );
    assert_eq!(e.waiting(t(SERVER)), Some(Wait::Recv));
}

#[test]
fn reply_recv_takes_a_queued_request_at_once() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 8, Delivery::Call).unwrap();
    e.deliver(t(3), ep, Badge(3), 9, Delivery::Call).unwrap();
    e.recv(t(SERVER), ep).unwrap();
    let r = e.reply_recv(t(SERVER), ep, 4).unwrap();
    let transfers: Vec<_> = r.outcome.transfers().collect();
    assert_eq!(
        transfers,
        [
            Transfer {
                from: t(SERVER),
                to: t(1),
                badge: Badge::NONE,
                len: 4
            },
            Transfer {
                from: t(3),
                to: t(SERVER),
                badge: Badge(3),
                len: 9
            },
        ]
    );
    assert_eq!(r.outcome.next, woke(t(1)));
    assert_eq!(e.waiting(t(3)), Some(Wait::Reply));
}

#[test]
fn reply_recv_wakes_both_the_caller_and_a_plain_sender() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    e.deliver(t(3), ep, Badge(3), 0, Delivery::Send).unwrap();
    e.recv(t(SERVER), ep).unwrap();
    let r = e.reply_recv(t(SERVER), ep, 0).unwrap();
    assert_eq!(
        r.outcome.next,
        Next::Continue {
            woken: [Some(t(1)), Some(t(3))]
        }
    );
}

#[test]
fn first_reply_recv_owes_nothing_and_blocks() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    let r = e.reply_recv(t(SERVER), ep, 0).unwrap();
    assert_eq!(r.reply, ReplyStatus::NoneOwed);
    assert_eq!(r.outcome.next, Next::Block(Wait::Recv));
    assert_eq!(r.outcome.transfers().count(), 0);
}

#[test]
fn messages_longer_than_the_limit_are_refused() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    assert!(
        e.deliver(t(1), ep, Badge(1), MAX_MESSAGE_LEN, Delivery::Call)
            .is_ok()
    );
    let too_long = MAX_MESSAGE_LEN + 1;
    assert_eq!(
        e.deliver(t(3), ep, Badge(1), too_long, Delivery::Call),
        Err(IpcError::MessageTooLong { len: too_long })
    );
    assert_eq!(
        e.deliver(t(3), ep, Badge(1), usize::MAX, Delivery::Send),
        Err(IpcError::MessageTooLong { len: usize::MAX })
    );
    e.recv(t(SERVER), ep).unwrap();
    assert_eq!(
        e.reply(t(SERVER), too_long),
        Err(IpcError::MessageTooLong { len: too_long })
    );
    assert_eq!(
        e.reply_recv(t(SERVER), ep, too_long),
        Err(IpcError::MessageTooLong { len: too_long })
    );
    assert_eq!(e.waiting(t(3)), None);
}

#[test]
fn unknown_and_destroyed_endpoints_are_refused() {
    let mut e = Endpoints::new();
    assert_eq!(
        e.deliver(t(1), EndpointId(0), Badge(1), 0, Delivery::Call),
        Err(IpcError::NoSuchEndpoint)
    );
    assert_eq!(
        e.recv(t(1), EndpointId(u16::MAX)),
        Err(IpcError::NoSuchEndpoint)
    );
    let ep = e.create().unwrap();
    e.destroy(ep).unwrap();
    assert_eq!(e.recv(t(1), ep), Err(IpcError::NoSuchEndpoint));
    assert_eq!(e.destroy(ep), Err(IpcError::NoSuchEndpoint));
}

#[test]
fn endpoint_slots_run_out_and_are_reused() {
    let mut e = Endpoints::new();
    for _ in 0..MAX_ENDPOINTS {
        e.create().unwrap();
    }
    assert_eq!(e.create(), Err(IpcError::OutOfEndpoints));
    e.destroy(EndpointId(7)).unwrap();
    assert_eq!(e.create(), Ok(EndpointId(7)));
}

#[test]
fn a_blocked_task_cannot_start_another_operation() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    assert_eq!(
        e.deliver(t(1), ep, Badge(1), 0, Delivery::Call),
        Err(IpcError::Busy)
    );
    assert_eq!(e.recv(t(1), ep), Err(IpcError::Busy));
    assert_eq!(e.queue_len(ep), 1);
}

#[test]
fn receiving_again_while_owing_a_reply_is_refused() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    e.recv(t(SERVER), ep).unwrap();
    assert_eq!(
        e.recv(t(SERVER), ep),
        Err(IpcError::ReplyPending { caller: t(1) })
    );
}

#[test]
fn server_death_releases_the_caller_it_owed_a_reply() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 0, Delivery::Call)
        .unwrap();
    assert_eq!(e.task_died(t(SERVER)), Some(t(CLIENT)));
    assert_eq!(e.waiting(t(CLIENT)), None);
    // The endpoint lives on for a restarted server.
    assert_eq!(
        e.recv(t(SERVER + 10), ep).unwrap().next,
        Next::Block(Wait::Recv)
    );
}

#[test]
fn replying_to_a_dead_caller_fails() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 0, Delivery::Call)
        .unwrap();
    e.recv(t(SERVER), ep).unwrap();
    assert_eq!(e.task_died(t(CLIENT)), None);
    assert_eq!(e.reply(t(SERVER), 0), Err(IpcError::CallerDied));
    assert_eq!(e.reply(t(SERVER), 0), Err(IpcError::NoReplyOwed));
}

#[test]
fn reply_recv_to_a_dead_caller_drops_the_reply_and_still_receives() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 0, Delivery::Call)
        .unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.task_died(t(CLIENT));
    let r = e.reply_recv(t(SERVER), ep, 0).unwrap();
    assert_eq!(r.reply, ReplyStatus::CallerDied);
    assert_eq!(r.outcome.next, Next::Block(Wait::Recv));
}

#[test]
fn a_dead_queued_task_leaves_the_queue() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    e.deliver(t(3), ep, Badge(3), 0, Delivery::Call).unwrap();
    assert_eq!(e.task_died(t(1)), None);
    assert_eq!(e.queue_len(ep), 1);
    let out = e.recv(t(SERVER), ep).unwrap();
    assert_eq!(out.transfers().next().unwrap().from, t(3));
    // A dead receiver leaves its queue too, and the endpoint becomes idle.
    let ep2 = e.create().unwrap();
    e.recv(t(7), ep2).unwrap();
    e.task_died(t(7));
    assert_eq!(
        e.deliver(t(8), ep2, Badge(8), 0, Delivery::Call)
            .unwrap()
            .next,
        Next::Block(Wait::Send)
    );
}

#[test]
fn destroying_an_endpoint_releases_its_queue() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    e.deliver(t(3), ep, Badge(3), 0, Delivery::Call).unwrap();
    let released = e.destroy(ep).unwrap();
    assert_eq!(released.iter().collect::<Vec<_>>(), [t(1), t(3)]);
    assert_eq!(e.waiting(t(1)), None);
    assert_eq!(e.waiting(t(3)), None);
}

#[test]
fn a_saved_reply_answers_later() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    e.deliver(t(3), ep, Badge(3), 0, Delivery::Call).unwrap();
    e.recv(t(SERVER), ep).unwrap();
    assert_eq!(e.save_reply(t(SERVER)), Ok(t(1)));
    // The server is free to receive the next request meanwhile.
    e.recv(t(SERVER), ep).unwrap();
    e.reply(t(SERVER), 0).unwrap();
    let out = e.reply_saved(t(SERVER), t(1), 5).unwrap();
    assert_eq!(out.next, woke(t(1)));
    assert_eq!(
        e.reply_saved(t(SERVER), t(1), 5),
        Err(IpcError::NotAwaitingReply)
    );
    assert_eq!(e.save_reply(t(SERVER)), Err(IpcError::NoReplyOwed));
}

#[test]
fn a_saved_reply_whose_holder_died_releases_the_caller() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(1), ep, Badge(1), 0, Delivery::Call).unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.save_reply(t(SERVER)).unwrap();
    assert_eq!(e.task_died(t(SERVER)), None);
    assert!(e.release_caller(t(1)));
    assert!(!e.release_caller(t(1)));
    assert_eq!(e.waiting(t(1)), None);
}

#[test]
fn a_timed_caller_still_queued_leaves_the_queue_at_its_deadline() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::TimedCall)
        .unwrap();
    e.deliver(t(3), ep, Badge(3), 4, Delivery::Call).unwrap();
    assert!(e.time_out(t(CLIENT)));
    assert_eq!(e.waiting(t(CLIENT)), None);
    assert_eq!(e.queue_len(ep), 1);
    // The server, when it comes back, gets the next caller's request.
    let out = e.recv(t(SERVER), ep).unwrap();
    assert_eq!(
        out.transfers[0].map(|t| (t.from, t.badge)),
        Some((t(3), Badge(3)))
    );
}

#[test]
fn a_timed_caller_stops_waiting_for_its_reply_and_the_late_reply_is_dropped() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::TimedCall)
        .unwrap();
    assert_eq!(e.waiting(t(CLIENT)), Some(Wait::Reply));
    assert!(e.time_out(t(CLIENT)));
    assert_eq!(e.waiting(t(CLIENT)), None);
    // The caller may call again at once; the hung server's late reply
    // must not answer that second call.
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::Call)
        .unwrap();
    assert_eq!(e.reply(t(SERVER), 4), Err(IpcError::CallerDied));
    assert_eq!(e.waiting(t(CLIENT)), Some(Wait::Send));
    // The server receives again and takes the second call.
    let out = e.recv(t(SERVER), ep).unwrap();
    assert_eq!(out.transfers[0].map(|t| t.from), Some(t(CLIENT)));
}

#[test]
fn a_deadline_never_ends_a_plain_call_or_a_finished_one() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::TimedCall)
        .unwrap();
    e.reply(t(SERVER), 4).unwrap();
    assert!(!e.time_out(t(CLIENT)), "answered in time");
    e.recv(t(SERVER), ep).unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::Call)
        .unwrap();
    assert!(
        !e.time_out(t(CLIENT)),
        "a plain call waits as long as it takes"
    );
    assert_eq!(e.waiting(t(CLIENT)), Some(Wait::Reply));
    assert!(e.reply(t(SERVER), 4).is_ok());
}

#[test]
fn a_queued_timed_caller_taken_by_recv_keeps_its_deadline() {
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::TimedCall)
        .unwrap();
    e.recv(t(SERVER), ep).unwrap();
    assert_eq!(e.waiting(t(CLIENT)), Some(Wait::Reply));
    assert!(e.time_out(t(CLIENT)));
    assert_eq!(e.reply(t(SERVER), 4), Err(IpcError::CallerDied));
}

/// The apply halves of the plain cases leave the endpoints as the checked
/// operations do, including a server whose reply right names a caller that
/// died (the blocking receive drops it) and a second receiver queued
/// behind the first.
#[test]
fn the_apply_halves_match_the_checked_operations() {
    let same = |a: &Endpoints, b: &Endpoints| format!("{a:?}") == format!("{b:?}");
    // A server owing a dead caller's reply blocks in recv: wait_plain.
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.deliver(t(CLIENT), ep, Badge(1), 8, Delivery::Call)
        .unwrap();
    e.task_died(t(CLIENT));
    assert!(!e.owes_reply(t(SERVER)));
    let mut checked = e.clone();
    assert!(checked.wait_plain(t(SERVER), ep, false).is_some());
    let mut applied = e.clone();
    applied.apply_wait_plain(t(SERVER), ep);
    assert!(same(&checked, &applied), "{checked:?}\n{applied:?}");
    assert_eq!(applied.waiting(t(SERVER)), Some(Wait::Recv));

    // Two receivers queued: a plain call takes the first, the endpoint
    // still has receivers; the general call does the same.
    let mut e = Endpoints::new();
    let ep = e.create().unwrap();
    e.recv(t(SERVER), ep).unwrap();
    e.recv(t(3), ep).unwrap();
    assert_eq!(e.plain_call_receiver(t(CLIENT), ep), Some(t(SERVER)));
    let mut general = e.clone();
    general
        .deliver(t(CLIENT), ep, Badge(1), 8, Delivery::Call)
        .unwrap();
    e.apply_call_plain(t(CLIENT), ep, t(SERVER));
    assert!(same(&general, &e), "{general:?}\n{e:?}");
    assert_eq!(e.waiting_receiver(ep), Some(t(3)));

    // The server answers with reply_recv: the plain case again matches.
    assert_eq!(e.plain_reply_recv_caller(t(SERVER), ep), Some(t(CLIENT)));
    let mut general = e.clone();
    general.reply_recv(t(SERVER), ep, 4).unwrap();
    e.apply_reply_recv_plain(t(SERVER), ep, t(CLIENT));
    assert!(same(&general, &e), "{general:?}\n{e:?}");
    assert_eq!(e.waiting(t(CLIENT)), None);
}
