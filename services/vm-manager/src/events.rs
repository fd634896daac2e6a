//! The vm-manager's record of VM state changes for `mica events`
//! ([`ipc::vm::events`]): a bounded ring of the newest
//! [`EVENT_HISTORY`] events with consecutive sequence numbers, read a page
//! at a time from any sequence number. A reader that falls further behind
//! than the ring holds is told how many it lost; the record lives in the
//! vm-manager's memory (a restarted vm-manager starts again at 0).

use ipc::WireName;
use ipc::vm::{EVENT_HISTORY, EventPage, VmChange, VmEvent, VmState};

/// The newest state changes, oldest first.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    events: heapless::Deque<VmEvent, EVENT_HISTORY>,
    /// The sequence number of the next event.
    next: u64,
    /// Which life of the vm-manager this is (see [`EventPage`]).
    incarnation: u32,
}

impl EventLog {
    /// An empty record whose first event is number 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `name`'s VM went through `change` and is now in
    /// `state`; the oldest event makes room when the ring is full.
    pub fn record(&mut self, name: &WireName, change: VmChange, state: VmState) {
        if self.events.is_full() {
            self.events.pop_front();
        }
        let event = VmEvent {
            seq: self.next,
            name: name.clone(),
            change,
            state,
        };
        // Room was made above.
        let _ = self.events.push_back(event);
        self.next = self.next.saturating_add(1);
    }

    /// Names this record's life of the vm-manager (its restart count), so
    /// that a reader of a former life notices the new numbering.
    pub fn set_incarnation(&mut self, incarnation: u32) {
        self.incarnation = incarnation;
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The sequence number of the oldest event kept (`next_seq` when none
    /// is).
    fn oldest(&self) -> u64 {
        self.events.front().map_or(self.next, |event| event.seq)
    }

    /// Up to a page of events from number `from` on. Events before the
    /// oldest kept are counted as lost; a `from` past the next event (a
    /// reader starting "from now" with `u64::MAX`, or one that followed a
    /// former vm-manager) gets no events and where the next will be.
    pub fn read(&self, from: u64) -> EventPage {
        if from > self.next {
            return EventPage {
                events: heapless::Vec::new(),
                next: self.next,
                lost: 0,
                incarnation: self.incarnation,
            };
        }
        let start = from.max(self.oldest());
        let mut events = heapless::Vec::new();
        for event in self.events.iter().filter(|event| event.seq >= start) {
            if events.push(event.clone()).is_err() {
                break;
            }
        }
        let next = events.last().map_or(self.next, |last| last.seq + 1);
        EventPage {
            events,
            next,
            lost: start - from,
            incarnation: self.incarnation,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use super::*;
    use alloc::vec::Vec;
    use ipc::vm::{EVENTS_PAGE, LastExit};

    fn name(text: &str) -> WireName {
        ipc::wire_name(text).unwrap()
    }

    fn seqs(page: &EventPage) -> Vec<u64> {
        page.events.iter().map(|event| event.seq).collect()
    }

    /// Reads every event from `from` on, page by page, as a reader would.
    fn read_all(log: &EventLog, mut from: u64) -> (Vec<u64>, u64) {
        let mut seen = Vec::new();
        let mut lost = 0;
        loop {
            let page = log.read(from);
            lost += page.lost;
            seen.extend(seqs(&page));
            if page.events.is_empty() {
                return (seen, lost);
            }
            from = page.next;
        }
    }

    #[test]
    fn events_are_numbered_and_read_a_page_at_a_time() {
        let mut log = EventLog::new();
        assert_eq!(log.read(0), EventPage::default());
        log.record(&name("web"), VmChange::Created, VmState::Created);
        log.record(&name("web"), VmChange::Started, VmState::Started);
        let page = log.read(0);
        assert_eq!(seqs(&page), [0, 1]);
        assert_eq!((page.next, page.lost), (2, 0));
        assert_eq!(page.events[1].name, name("web"));
        assert_eq!(page.events[1].change, VmChange::Started);
        assert_eq!(page.events[1].state, VmState::Started);
        assert_eq!(
            log.read(2),
            EventPage {
                next: 2,
                ..EventPage::default()
            }
        );
        for _ in 0..EVENTS_PAGE {
            log.record(&name("db"), VmChange::Paused, VmState::Paused);
        }
        let page = log.read(1);
        assert_eq!(seqs(&page), [1, 2, 3, 4], "a full page");
        assert_eq!(page.next, 5, "the rest from 5");
        assert_eq!(read_all(&log, 0), ((0..6).collect(), 0));
    }

    #[test]
    fn a_reader_that_falls_behind_the_ring_is_told_how_many_it_lost() {
        let mut log = EventLog::new();
        let total = EVENT_HISTORY as u64 + 10;
        for _ in 0..total {
            log.record(&name("web"), VmChange::Resumed, VmState::Started);
        }
        assert_eq!(log.next_seq(), total);
        let page = log.read(3);
        assert_eq!(page.lost, 7, "events 3 to 9 are gone");
        assert_eq!(page.events[0].seq, 10, "the oldest kept");
        let (seen, lost) = read_all(&log, 0);
        assert_eq!(lost, 10);
        assert_eq!(seen, (10..total).collect::<Vec<_>>());
        assert_eq!(log.read(total - 1).lost, 0);
    }

    #[test]
    fn from_now_and_from_a_former_vm_manager_say_where_the_next_will_be() {
        let mut log = EventLog::new();
        log.record(&name("web"), VmChange::Created, VmState::Created);
        for from in [2, 99, u64::MAX] {
            let page = log.read(from);
            assert!(page.events.is_empty());
            assert_eq!((page.next, page.lost), (1, 0), "from {from}");
        }
        let exit = VmChange::Exited {
            exit: LastExit::Destroyed,
            uptime_ms: None,
        };
        log.record(&name("web"), exit, VmState::PoweredOff);
        assert_eq!(log.read(1).events[0].change, exit);
        assert_eq!(log.read(0).incarnation, 0);
        log.set_incarnation(3);
        assert_eq!(log.read(0).incarnation, 3, "a restarted vm-manager says so");
    }
}
