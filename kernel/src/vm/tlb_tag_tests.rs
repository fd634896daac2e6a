//! The tag pool: lowest free tag first, 0 never handed out, a freed tag
//! comes back marked for a flush, a full pool refuses without changing,
//! and a proptest against a model of the same rules.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn pool(max: u16) -> TlbTags {
    let mut tags = TlbTags::new();
    tags.set_hardware_max(max);
    tags
}

fn fresh(id: u16) -> TlbTag {
    TlbTag { id, reused: false }
}

fn reused(id: u16) -> TlbTag {
    TlbTag { id, reused: true }
}

#[test]
fn hands_out_the_lowest_free_tag_from_one() {
    let mut tags = pool(4);
    assert_eq!(tags.alloc(), Ok(fresh(1)));
    assert_eq!(tags.alloc(), Ok(fresh(2)));
    assert_eq!(tags.alloc(), Ok(fresh(3)));
    assert!(tags.free(2));
    assert_eq!(tags.alloc(), Ok(reused(2)), "the freed tag, to be flushed");
    assert_eq!(tags.alloc(), Ok(fresh(4)));
    assert_eq!(tags.held_count(), 4);
}

#[test]
fn a_full_pool_refuses_and_changes_nothing() {
    let mut tags = pool(3);
    for id in 1..=3 {
        assert_eq!(tags.alloc(), Ok(fresh(id)));
    }
    let before = tags.clone();
    assert_eq!(tags.alloc(), Err(TagsExhausted { max: 3 }));
    assert_eq!(tags.held, before.held);
    assert_eq!(tags.handed_out, before.handed_out);
    assert!(tags.free(3));
    assert_eq!(tags.alloc(), Ok(reused(3)));
}

#[test]
fn more_creations_than_tags_never_share_one() {
    // 16,383 tags (14-bit VMIDs), 40,000 VMs made and destroyed, up to
    // three alive at a time: no tag is ever held twice, the freed ones are
    // recycled (three tags serve them all), and a tag is flagged for a
    // flush exactly when it was handed out before.
    let mut tags = pool(MAX_TAG);
    let mut live: Vec<TlbTag> = Vec::new();
    let mut seen = BTreeSet::new();
    for n in 0..40_000u32 {
        if live.len() == 3 {
            let gone = live.remove((n % 3) as usize);
            assert!(tags.free(gone.id));
        }
        let tag = tags.alloc().unwrap();
        assert!(live.iter().all(|t| t.id != tag.id), "{tag:?} is held");
        assert_eq!(tag.reused, !seen.insert(tag.id), "{tag:?}");
        live.push(tag);
    }
    assert_eq!(seen, (1..=3).collect::<BTreeSet<u16>>());
    assert_eq!(tags.held_count(), 3);
}

#[test]
fn the_highest_tag_of_a_word_and_of_the_space_are_handed_out() {
    let mut tags = pool(MAX_TAG);
    for id in 1..=MAX_TAG {
        assert_eq!(tags.alloc(), Ok(fresh(id)));
    }
    assert_eq!(tags.alloc(), Err(TagsExhausted { max: MAX_TAG }));
    assert!(tags.free(64) && tags.free(MAX_TAG) && tags.free(63));
    assert_eq!(tags.alloc(), Ok(reused(63)));
    assert_eq!(tags.alloc(), Ok(reused(64)));
    assert_eq!(tags.alloc(), Ok(reused(MAX_TAG)));
}

#[test]
fn no_tags_means_every_vm_is_untagged() {
    let mut tags = pool(0);
    for _ in 0..5 {
        assert_eq!(tags.alloc(), Ok(TlbTag::UNTAGGED));
    }
    assert!(!tags.free(0), "tag 0 is never held");
    assert_eq!(tags.held_count(), 0);
}

#[test]
fn hardware_beyond_the_tracked_space_is_capped() {
    // VMX has 16-bit VPIDs: only the tracked ones are used.
    let tags = pool(u16::MAX);
    assert_eq!(tags.max(), MAX_TAG);
}

#[test]
fn the_boot_limit_lowers_the_hardware_maximum_but_never_raises_it() {
    let mut tags = pool(15);
    tags.limit(3);
    assert_eq!(tags.max(), 3);
    tags.limit(100);
    assert_eq!(tags.max(), 15);
    tags.set_hardware_max(0);
    assert_eq!(
        tags.max(),
        0,
        "no hardware tags: untagged, whatever the limit"
    );
}

#[test]
fn a_lowered_maximum_keeps_held_tags_until_freed() {
    let mut tags = pool(5);
    for id in 1..=5 {
        assert_eq!(tags.alloc(), Ok(fresh(id)));
    }
    tags.limit(2);
    assert_eq!(tags.alloc(), Err(TagsExhausted { max: 2 }));
    assert!(tags.is_held(5));
    assert!(tags.free(5));
    assert_eq!(tags.alloc(), Err(TagsExhausted { max: 2 }), "5 is above it");
    assert!(tags.free(1));
    assert_eq!(tags.alloc(), Ok(reused(1)));
}

#[test]
fn freeing_a_tag_nobody_holds_changes_nothing() {
    let mut tags = pool(8);
    assert!(!tags.free(1));
    assert!(!tags.free(0));
    assert!(!tags.free(u16::MAX), "beyond the tracked space");
    assert_eq!(tags.alloc(), Ok(fresh(1)));
    assert!(tags.free(1));
    assert!(!tags.free(1), "freed twice");
}

#[test]
fn the_boot_option_is_read_from_the_command_line() {
    assert_eq!(boot_limit(""), Ok(None));
    assert_eq!(boot_limit("console=ttyS0 quiet"), Ok(None));
    assert_eq!(boot_limit("mica.vm_ids=3"), Ok(Some(3)));
    assert_eq!(boot_limit("quiet  mica.vm_ids=16383 x"), Ok(Some(16383)));
    assert_eq!(boot_limit("mica.vm_ids=0"), Err("mica.vm_ids=0"));
    assert_eq!(boot_limit("mica.vm_ids=16384"), Err("mica.vm_ids=16384"));
    assert_eq!(boot_limit("mica.vm_ids=two"), Err("mica.vm_ids=two"));
    assert_eq!(boot_limit("mica.vm_ids"), Err("mica.vm_ids"));
    assert_eq!(boot_limit("mica.vm_idsx=2"), Ok(None), "another option");
}

/// One step of the proptest.
#[derive(Debug, Clone)]
enum Op {
    Alloc,
    /// Free the live tag at this index (modulo the number live).
    Free(usize),
    /// Free a tag whether or not it is held.
    FreeAny(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
        1 => (0u16..80).prop_map(Op::FreeAny),
    ]
}

/// The rules, written the slow way.
struct Model {
    max: u16,
    held: BTreeSet<u16>,
    handed_out: BTreeSet<u16>,
}

impl Model {
    fn alloc(&mut self) -> Result<TlbTag, TagsExhausted> {
        if self.max == 0 {
            return Ok(TlbTag::UNTAGGED);
        }
        let id = (1..=self.max)
            .find(|t| !self.held.contains(t))
            .ok_or(TagsExhausted { max: self.max })?;
        self.held.insert(id);
        Ok(TlbTag {
            id,
            reused: !self.handed_out.insert(id),
        })
    }
}

proptest! {
    #[test]
    fn the_pool_follows_the_model(max in 0u16..70, ops in proptest::collection::vec(op(), 1..300)) {
        let mut tags = pool(max);
        let mut model = Model { max, held: BTreeSet::new(), handed_out: BTreeSet::new() };
        for op in ops {
            match op {
                Op::Alloc => {
                    let got = tags.alloc();
                    let want = model.alloc();
                    prop_assert_eq!(got, want);
                    if let Ok(tag) = got && tag.id != 0 {
                        prop_assert!(tags.is_held(tag.id));
                    }
                }
                Op::Free(i) => {
                    if model.held.is_empty() {
                        continue;
                    }
                    let id = *model.held.iter().nth(i % model.held.len()).unwrap();
                    model.held.remove(&id);
                    prop_assert!(tags.free(id));
                }
                Op::FreeAny(id) => {
                    prop_assert_eq!(tags.free(id), model.held.remove(&id));
                }
            }
            prop_assert_eq!(tags.held_count(), model.held.len());
            for id in 0..=max.saturating_add(1) {
                prop_assert_eq!(tags.is_held(id), model.held.contains(&id), "tag {}", id);
            }
        }
    }
}
