//! FIFO queues of tasks that share one set of links, so that a task can be
//! in at most one queue of the set, and every operation (push, pop, removal
//! from the middle when a task dies) is O(1) without allocation.

use super::MAX_TASKS;
use super::ids::TaskId;

/// Why a queue operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue index is not one of this set's queues.
    NoSuchQueue,
    /// The task is already in a queue of this set (maybe this one).
    AlreadyQueued,
}

/// "No slot" / "in no queue" in the compact links (task slots and queue
/// numbers are all below it).
const NONE: u8 = u8::MAX;
const _: () = assert!(MAX_TASKS < NONE as usize, "task slots fit in a u8 link");

#[derive(Clone, Copy, Debug)]
struct Link {
    /// The queued task (with its generation) while `queue` is not [`NONE`].
    task: TaskId,
    /// The queue it is in, or [`NONE`].
    queue: u8,
    /// Its neighbours' slots, or [`NONE`].
    prev: u8,
    next: u8,
}

#[derive(Clone, Copy, Debug)]
struct Ends {
    head: u8,
    tail: u8,
    len: u16,
}

/// `QUEUES` FIFO queues over the tasks of the task table, each task in at
/// most one of them. Links are slot numbers in bytes, so an operation on
/// the IPC and scheduling paths touches a few bytes, not option-wrapped
/// words.
#[derive(Clone, Debug)]
pub struct TaskQueues<const QUEUES: usize> {
    links: [Link; MAX_TASKS],
    ends: [Ends; QUEUES],
}

impl<const QUEUES: usize> Default for TaskQueues<QUEUES> {
    fn default() -> Self {
        Self::new()
    }
}

/// A slot number as a link byte (slots are below [`MAX_TASKS`]).
#[allow(clippy::cast_possible_truncation, reason = "MAX_TASKS < NONE")]
const fn link(slot: usize) -> u8 {
    slot as u8
}

impl<const QUEUES: usize> TaskQueues<QUEUES> {
    const FITS: () = assert!(QUEUES < NONE as usize, "queue numbers fit in a u8");

    /// Empty queues.
    pub const fn new() -> Self {
        let () = Self::FITS;
        TaskQueues {
            links: [Link {
                task: match TaskId::new(0, 0) {
                    Some(t) => t,
                    None => panic!("slot 0 exists"),
                },
                queue: NONE,
                prev: NONE,
                next: NONE,
            }; MAX_TASKS],
            ends: [Ends {
                head: NONE,
                tail: NONE,
                len: 0,
            }; QUEUES],
        }
    }

    /// Appends `task` to the back of `queue`.
    pub fn push_back(&mut self, queue: usize, task: TaskId) -> Result<(), QueueError> {
        self.insert(queue, task, false)
    }

    /// Puts `task` at the front of `queue` (a preempted task resumes first).
    pub fn push_front(&mut self, queue: usize, task: TaskId) -> Result<(), QueueError> {
        self.insert(queue, task, true)
    }

    #[inline]
    fn insert(&mut self, queue: usize, task: TaskId, front: bool) -> Result<(), QueueError> {
        let slot = task.slot();
        let ends = self.ends.get_mut(queue).ok_or(QueueError::NoSuchQueue)?;
        if self.links[slot].queue != NONE {
            return Err(QueueError::AlreadyQueued);
        }
        let (prev, next) = if front {
            (NONE, ends.head)
        } else {
            (ends.tail, NONE)
        };
        if prev == NONE {
            ends.head = link(slot);
        }
        if next == NONE {
            ends.tail = link(slot);
        }
        ends.len += 1;
        self.links[slot] = Link {
            task,
            queue: link(queue),
            prev,
            next,
        };
        if prev != NONE {
            self.links[usize::from(prev)].next = link(slot);
        }
        if next != NONE {
            self.links[usize::from(next)].prev = link(slot);
        }
        Ok(())
    }

    /// Removes and returns the task at the front of `queue`.
    #[inline]
    pub fn pop_front(&mut self, queue: usize) -> Option<TaskId> {
        let ends = self.ends.get_mut(queue)?;
        let head = usize::from(ends.head);
        let gone = self.links.get_mut(head)?;
        // The head has no `prev`: only its successor (or the tail) moves.
        let (task, next) = (gone.task, gone.next);
        (gone.queue, gone.prev, gone.next) = (NONE, NONE, NONE);
        ends.head = next;
        ends.len -= 1;
        match self.links.get_mut(usize::from(next)) {
            Some(successor) => successor.prev = NONE,
            None => ends.tail = NONE,
        }
        Some(task)
    }

    /// The task at the front of `queue`, left in place.
    #[inline]
    pub fn front(&self, queue: usize) -> Option<TaskId> {
        let head = self.ends.get(queue)?.head;
        (head != NONE).then(|| self.links[usize::from(head)].task)
    }

    /// Takes `task` out of whichever queue it is in and returns that queue;
    /// `None` if it was in none (or the slot holds another generation).
    #[inline]
    pub fn remove(&mut self, task: TaskId) -> Option<usize> {
        let l = self.links[task.slot()];
        if l.queue == NONE || l.task != task {
            return None;
        }
        let queue = usize::from(l.queue);
        let ends = self.ends.get_mut(queue)?;
        if l.prev == NONE {
            ends.head = l.next;
        }
        if l.next == NONE {
            ends.tail = l.prev;
        }
        ends.len -= 1;
        if l.prev != NONE {
            self.links[usize::from(l.prev)].next = l.next;
        }
        if l.next != NONE {
            self.links[usize::from(l.next)].prev = l.prev;
        }
        let gone = &mut self.links[task.slot()];
        (gone.queue, gone.prev, gone.next) = (NONE, NONE, NONE);
        Some(queue)
    }

    /// The queue `task` is in, if any.
    pub fn queue_of(&self, task: TaskId) -> Option<usize> {
        let l = self.links[task.slot()];
        (l.queue != NONE && l.task == task).then_some(usize::from(l.queue))
    }

    /// Whether `queue` holds no task (a nonexistent queue is empty).
    pub fn is_empty(&self, queue: usize) -> bool {
        self.len(queue) == 0
    }

    /// How many tasks wait in `queue`.
    pub fn len(&self, queue: usize) -> usize {
        self.ends.get(queue).map_or(0, |e| usize::from(e.len))
    }

    /// The tasks of `queue`, front to back.
    pub fn iter(&self, queue: usize) -> impl Iterator<Item = TaskId> + '_ {
        let mut cursor = self.ends.get(queue).map_or(NONE, |e| e.head);
        core::iter::from_fn(move || {
            let l = self.links.get(usize::from(cursor))?;
            cursor = l.next;
            Some(l.task)
        })
    }
}

/// A fixed-capacity list of task ids (at most one per task slot), for
/// reporting "these tasks were released".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskList {
    tasks: [Option<TaskId>; MAX_TASKS],
    len: usize,
}

impl Default for TaskList {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskList {
    /// An empty list.
    pub const fn new() -> Self {
        TaskList {
            tasks: [None; MAX_TASKS],
            len: 0,
        }
    }

    /// Appends `task`; returns `false` (and drops it) if the list is full,
    /// which cannot happen while each task appears at most once.
    pub fn push(&mut self, task: TaskId) -> bool {
        match self.tasks.get_mut(self.len) {
            Some(entry) => {
                *entry = Some(task);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// How many tasks the list holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tasks, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks.iter().take(self.len).flatten().copied()
    }

    /// Whether `task` is in the list.
    pub fn contains(&self, task: TaskId) -> bool {
        self.iter().any(|t| t == task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(slot: usize) -> TaskId {
        TaskId::new(slot, 1).unwrap()
    }

    fn contents<const Q: usize>(q: &TaskQueues<Q>, queue: usize) -> Vec<usize> {
        q.iter(queue).map(TaskId::slot).collect()
    }

    #[test]
    fn fifo_order_within_a_queue() {
        let mut q = TaskQueues::<2>::new();
        for s in [3, 1, 2] {
            q.push_back(0, t(s)).unwrap();
        }
        assert_eq!(contents(&q, 0), [3, 1, 2]);
        assert_eq!(q.len(0), 3);
        assert_eq!(q.pop_front(0), Some(t(3)));
        assert_eq!(q.pop_front(0), Some(t(1)));
        assert_eq!(q.pop_front(0), Some(t(2)));
        assert_eq!(q.pop_front(0), None);
        assert!(q.is_empty(0));
    }

    #[test]
    fn push_front_goes_first() {
        let mut q = TaskQueues::<1>::new();
        q.push_back(0, t(1)).unwrap();
        q.push_front(0, t(2)).unwrap();
        q.push_back(0, t(3)).unwrap();
        assert_eq!(contents(&q, 0), [2, 1, 3]);
        let mut empty = TaskQueues::<1>::new();
        empty.push_front(0, t(4)).unwrap();
        empty.push_back(0, t(5)).unwrap();
        assert_eq!(contents(&empty, 0), [4, 5]);
    }

    #[test]
    fn a_task_is_in_at_most_one_queue() {
        let mut q = TaskQueues::<2>::new();
        q.push_back(0, t(1)).unwrap();
        assert_eq!(q.push_back(1, t(1)), Err(QueueError::AlreadyQueued));
        assert_eq!(q.push_back(0, t(1)), Err(QueueError::AlreadyQueued));
        assert_eq!(q.queue_of(t(1)), Some(0));
    }

    #[test]
    fn unknown_queue_is_refused() {
        let mut q = TaskQueues::<2>::new();
        assert_eq!(q.push_back(2, t(1)), Err(QueueError::NoSuchQueue));
        assert_eq!(q.pop_front(2), None);
        assert!(q.is_empty(7));
    }

    #[test]
    fn removal_from_head_middle_and_tail_keeps_order() {
        let mut q = TaskQueues::<1>::new();
        for s in 0..5 {
            q.push_back(0, t(s)).unwrap();
        }
        assert_eq!(q.remove(t(2)), Some(0));
        assert_eq!(contents(&q, 0), [0, 1, 3, 4]);
        assert_eq!(q.remove(t(0)), Some(0));
        assert_eq!(q.remove(t(4)), Some(0));
        assert_eq!(contents(&q, 0), [1, 3]);
        assert_eq!(q.remove(t(4)), None);
        q.push_back(0, t(4)).unwrap();
        assert_eq!(contents(&q, 0), [1, 3, 4]);
        assert_eq!(q.len(0), 3);
    }

    #[test]
    fn a_stale_id_does_not_remove_the_current_occupant() {
        let mut q = TaskQueues::<1>::new();
        q.push_back(0, t(1)).unwrap();
        let stale = TaskId::new(1, 0).unwrap();
        assert_eq!(q.remove(stale), None);
        assert_eq!(q.queue_of(stale), None);
        assert_eq!(q.queue_of(t(1)), Some(0));
    }

    #[test]
    fn task_list_holds_each_pushed_task() {
        let mut l = TaskList::new();
        assert!(l.is_empty());
        for s in 0..MAX_TASKS {
            assert!(l.push(t(s)));
        }
        assert!(!l.push(t(0)));
        assert_eq!(l.len(), MAX_TASKS);
        assert!(l.contains(t(7)));
        assert_eq!(l.iter().count(), MAX_TASKS);
    }
}
