//! Notifications: a word of bits that `signal` ORs into and `wait` takes,
//! for upcalls such as "ioreq pending" or "a task died". At most one waiter
//! is woken per signal, and it receives every pending bit at once.

use super::MAX_NOTIFICATIONS;
use super::ids::{NotificationId, TaskId};
use super::queue::{TaskList, TaskQueues};

/// Why a notification operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationError {
    /// The index names no live notification.
    NoSuchNotification,
    /// Every notification slot is in use.
    OutOfNotifications,
    /// The task is already waiting on a notification.
    AlreadyWaiting,
}

/// The result of a `signal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signalled {
    /// Nobody waited: the bits are pending in the word.
    Pending,
    /// `task` was waiting and is now ready, and receives `bits` (the word is
    /// clear again).
    Woke { task: TaskId, bits: u64 },
}

/// The result of a `wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// Bits were pending; here they are, and the word is clear.
    Bits(u64),
    /// Nothing was pending; the task blocks until a signal.
    Blocked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    Live { bits: u64 },
}

/// All notifications and their waiters.
#[derive(Clone, Debug)]
pub struct Notifications {
    slots: [Slot; MAX_NOTIFICATIONS],
    waiters: TaskQueues<MAX_NOTIFICATIONS>,
}

impl Default for Notifications {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifications {
    /// No notifications.
    pub const fn new() -> Self {
        Notifications {
            slots: [Slot::Free; MAX_NOTIFICATIONS],
            waiters: TaskQueues::new(),
        }
    }

    /// Makes a notification with a clear word in the lowest free slot.
    pub fn create(&mut self) -> Result<NotificationId, NotificationError> {
        let index = self
            .slots
            .iter()
            .position(|s| *s == Slot::Free)
            .ok_or(NotificationError::OutOfNotifications)?;
        let id = u16::try_from(index).map_err(|_| NotificationError::OutOfNotifications)?;
        self.slots[index] = Slot::Live { bits: 0 };
        Ok(NotificationId(id))
    }

    /// Destroys `n` and returns its waiters, all of which are
    /// dropped from its queue (the caller releases them with an error).
    pub fn destroy(&mut self, n: NotificationId) -> Result<TaskList, NotificationError> {
        let index = self.live(n)?;
        let mut released = TaskList::new();
        while let Some(task) = self.waiters.pop_front(index) {
            released.push(task);
        }
        self.slots[index] = Slot::Free;
        Ok(released)
    }

    /// ORs `bits` into `n` and wakes its oldest waiter, if any.
    pub fn signal(&mut self, n: NotificationId, bits: u64) -> Result<Signalled, NotificationError> {
        let index = self.live(n)?;
        let pending = self.bits_at(index) | bits;
        match self.waiters.pop_front(index) {
            Some(task) if pending != 0 => {
                self.slots[index] = Slot::Live { bits: 0 };
                Ok(Signalled::Woke {
                    task,
                    bits: pending,
                })
            }
            Some(task) => {
                // Signalling no bits wakes nobody: put the waiter back in front.
                self.waiters
                    .push_front(index, task)
                    .map_err(|_| NotificationError::AlreadyWaiting)?;
                Ok(Signalled::Pending)
            }
            None => {
                self.slots[index] = Slot::Live { bits: pending };
                Ok(Signalled::Pending)
            }
        }
    }

    /// Takes the pending bits of `n`, or queues `task` to wait for some.
    pub fn wait(&mut self, task: TaskId, n: NotificationId) -> Result<Waited, NotificationError> {
        let index = self.live(n)?;
        if self.waiters.queue_of(task).is_some() {
            return Err(NotificationError::AlreadyWaiting);
        }
        let bits = self.bits_at(index);
        if bits != 0 {
            self.slots[index] = Slot::Live { bits: 0 };
            return Ok(Waited::Bits(bits));
        }
        self.waiters
            .push_back(index, task)
            .map_err(|_| NotificationError::AlreadyWaiting)?;
        Ok(Waited::Blocked)
    }

    /// Takes the pending bits of `n` (zero if none) without blocking.
    pub fn poll(&mut self, n: NotificationId) -> Result<u64, NotificationError> {
        let index = self.live(n)?;
        let bits = self.bits_at(index);
        self.slots[index] = Slot::Live { bits: 0 };
        Ok(bits)
    }

    /// Takes `task` off any wait queue (it died); whether it was waiting.
    pub fn task_died(&mut self, task: TaskId) -> bool {
        self.waiters.remove(task).is_some()
    }

    /// The notification `task` waits on, if any.
    pub fn waiting_on(&self, task: TaskId) -> Option<NotificationId> {
        self.waiters
            .queue_of(task)
            .and_then(|q| u16::try_from(q).ok())
            .map(NotificationId)
    }

    fn bits_at(&self, index: usize) -> u64 {
        match self.slots[index] {
            Slot::Live { bits } => bits,
            Slot::Free => 0,
        }
    }

    fn live(&self, n: NotificationId) -> Result<usize, NotificationError> {
        let index = usize::from(n.0);
        match self.slots.get(index) {
            Some(Slot::Live { .. }) => Ok(index),
            _ => Err(NotificationError::NoSuchNotification),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(slot: usize) -> TaskId {
        TaskId::new(slot, 1).unwrap()
    }

    #[test]
    fn signals_accumulate_until_polled() {
        let mut ns = Notifications::new();
        let n = ns.create().unwrap();
        assert_eq!(ns.signal(n, 0b01), Ok(Signalled::Pending));
        assert_eq!(ns.signal(n, 0b10), Ok(Signalled::Pending));
        assert_eq!(ns.poll(n), Ok(0b11));
        assert_eq!(ns.poll(n), Ok(0));
    }

    #[test]
    fn wait_takes_pending_bits_without_blocking() {
        let mut ns = Notifications::new();
        let n = ns.create().unwrap();
        ns.signal(n, 0b100).unwrap();
        assert_eq!(ns.wait(t(1), n), Ok(Waited::Bits(0b100)));
        assert_eq!(ns.waiting_on(t(1)), None);
        assert_eq!(ns.poll(n), Ok(0));
    }

    #[test]
    fn wait_blocks_and_a_signal_wakes_the_oldest_waiter_only() {
        let mut ns = Notifications::new();
        let n = ns.create().unwrap();
        assert_eq!(ns.wait(t(1), n), Ok(Waited::Blocked));
        assert_eq!(ns.wait(t(2), n), Ok(Waited::Blocked));
        assert_eq!(ns.waiting_on(t(2)), Some(n));
        assert_eq!(
            ns.signal(n, 0b1),
            Ok(Signalled::Woke {
                task: t(1),
                bits: 0b1
            })
        );
        assert_eq!(ns.poll(n), Ok(0), "the woken waiter took the bits");
        assert_eq!(
            ns.signal(n, 0b1000),
            Ok(Signalled::Woke {
                task: t(2),
                bits: 0b1000
            })
        );
        assert_eq!(ns.signal(n, 0b1), Ok(Signalled::Pending));
    }

    #[test]
    fn an_empty_signal_wakes_nobody() {
        let mut ns = Notifications::new();
        let n = ns.create().unwrap();
        ns.wait(t(1), n).unwrap();
        assert_eq!(ns.signal(n, 0), Ok(Signalled::Pending));
        assert_eq!(ns.waiting_on(t(1)), Some(n));
    }

    #[test]
    fn waiting_twice_is_refused() {
        let mut ns = Notifications::new();
        let a = ns.create().unwrap();
        let b = ns.create().unwrap();
        ns.wait(t(1), a).unwrap();
        assert_eq!(ns.wait(t(1), b), Err(NotificationError::AlreadyWaiting));
    }

    #[test]
    fn unknown_notifications_are_refused() {
        let mut ns = Notifications::new();
        let missing = NotificationId(u16::MAX);
        assert_eq!(
            ns.signal(missing, 1),
            Err(NotificationError::NoSuchNotification)
        );
        assert_eq!(
            ns.wait(t(1), NotificationId(0)),
            Err(NotificationError::NoSuchNotification)
        );
        assert_eq!(
            ns.poll(NotificationId(3)),
            Err(NotificationError::NoSuchNotification)
        );
        let n = ns.create().unwrap();
        ns.destroy(n).unwrap();
        assert_eq!(ns.poll(n), Err(NotificationError::NoSuchNotification));
    }

    #[test]
    fn slots_run_out() {
        let mut ns = Notifications::new();
        for _ in 0..MAX_NOTIFICATIONS {
            ns.create().unwrap();
        }
        assert_eq!(ns.create(), Err(NotificationError::OutOfNotifications));
    }

    #[test]
    fn a_dead_waiter_is_not_woken() {
        let mut ns = Notifications::new();
        let n = ns.create().unwrap();
        ns.wait(t(1), n).unwrap();
        ns.wait(t(2), n).unwrap();
        assert!(ns.task_died(t(1)));
        assert!(!ns.task_died(t(1)));
        assert_eq!(
            ns.signal(n, 1),
            Ok(Signalled::Woke {
                task: t(2),
                bits: 1
            })
        );
    }

    #[test]
    fn destroy_releases_waiters() {
        let mut ns = Notifications::new();
        let n = ns.create().unwrap();
        ns.wait(t(4), n).unwrap();
        let released = ns.destroy(n).unwrap();
        assert!(released.contains(t(4)));
        assert_eq!(ns.waiting_on(t(4)), None);
    }
}
