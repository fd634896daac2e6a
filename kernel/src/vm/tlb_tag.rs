//! The tags a CPU puts on a VM's cached translations (RISC-V `hgatp.VMID`,
//! AMD SVM ASIDs, Intel VMX VPIDs). Every live VM holds a tag of its own,
//! so two VMs never share TLB entries; a destroyed VM's tag goes back to
//! the pool, and the next VM to get it is told to flush what the CPU may
//! still cache under it ([`TlbTag::reused`]). When every tag is held, a new
//! VM is refused rather than given a tag in use.
//!
//! How many tags the hardware has is the arch layer's to say; a boot
//! option (`mica.vm_ids=N`, see [`boot_limit`]) may lower it so that a test
//! can run out of them with a handful of VMs. Fixed-size and
//! allocation-free: one bit per tag held and one per tag ever handed out.

/// Tags this kernel tracks: `0..TAG_SPACE`, the widest RISC-V VMID (14
/// bits, VMIDMAX for Sv39x4).
pub const TAG_SPACE: usize = 1 << 14;

/// The highest tag ever handed out (tag 0 is never handed out: it is the
/// host's on SVM and VMX, and "no tag" on RISC-V).
#[allow(clippy::cast_possible_truncation, reason = "TAG_SPACE <= 1 << 16")]
pub const MAX_TAG: u16 = (TAG_SPACE - 1) as u16;

const WORDS: usize = TAG_SPACE / 64;

/// The tag of one VM's translations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbTag {
    /// The tag, `1..=max`; 0 on hardware without tags, where the arch
    /// flushes the guest translations at every switch between VMs.
    pub id: u16,
    /// An earlier VM held this tag: the CPU may still cache that VM's
    /// translations under it, so the arch flushes the tag before this VM
    /// first runs.
    pub reused: bool,
}

impl TlbTag {
    /// The tag of every VM on hardware without tags.
    pub const UNTAGGED: TlbTag = TlbTag {
        id: 0,
        reused: false,
    };
}

/// Every tag is held by a live VM: destroy one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagsExhausted {
    /// How many tags there are (`1..=max`).
    pub max: u16,
}

/// The pool of tags.
#[derive(Clone, Debug)]
pub struct TlbTags {
    /// Bit `t`: tag `t` is held by a live VM.
    held: [u64; WORDS],
    /// Bit `t`: tag `t` was handed out before (its translations may be
    /// cached).
    handed_out: [u64; WORDS],
    /// Tags the hardware has (`1..=hardware_max`), at most [`MAX_TAG`].
    hardware_max: u16,
    /// At most this many tags, from the boot option.
    boot_limit: Option<u16>,
}

impl Default for TlbTags {
    fn default() -> Self {
        Self::new()
    }
}

impl TlbTags {
    /// A pool with no tags until [`TlbTags::set_hardware_max`] says how
    /// many the hardware has.
    pub const fn new() -> Self {
        TlbTags {
            held: [0; WORDS],
            handed_out: [0; WORDS],
            hardware_max: 0,
            boot_limit: None,
        }
    }

    /// The hardware has tags `1..=max` (0: none); more than [`MAX_TAG`]
    /// are not used. Tags already held above a lowered maximum stay held
    /// until they are freed.
    pub fn set_hardware_max(&mut self, max: u16) {
        self.hardware_max = max.min(MAX_TAG);
    }

    /// Hands out at most `count` tags (the boot option), however many the
    /// hardware has.
    pub fn limit(&mut self, count: u16) {
        self.boot_limit = Some(count);
    }

    /// The highest tag that may be handed out now; 0 when there are none
    /// (every VM runs untagged).
    pub fn max(&self) -> u16 {
        match self.boot_limit {
            Some(limit) => self.hardware_max.min(limit),
            None => self.hardware_max,
        }
    }

    /// The lowest tag no live VM holds, now held, with whether it was
    /// handed out before; [`TlbTag::UNTAGGED`] when there are no tags at
    /// all. `TagsExhausted` (nothing changed) when every tag is held.
    pub fn alloc(&mut self) -> Result<TlbTag, TagsExhausted> {
        let max = self.max();
        if max == 0 {
            return Ok(TlbTag::UNTAGGED);
        }
        let last_word = usize::from(max) / 64;
        for (w, held) in self.held.iter().enumerate().take(last_word + 1) {
            // Tag 0 is never handed out.
            let free = !held & if w == 0 { !1 } else { !0 };
            if free == 0 {
                continue;
            }
            let tag = w * 64 + free.trailing_zeros() as usize;
            if tag > usize::from(max) {
                break;
            }
            let bit = 1u64 << (tag % 64);
            self.held[w] |= bit;
            let reused = self.handed_out[w] & bit != 0;
            self.handed_out[w] |= bit;
            #[allow(clippy::cast_possible_truncation, reason = "tag <= max: u16")]
            return Ok(TlbTag {
                id: tag as u16,
                reused,
            });
        }
        Err(TagsExhausted { max })
    }

    /// Gives tag `id` back; `false` (nothing changed) if no VM held it
    /// (tag 0, the untagged VMs' tag, is never held).
    pub fn free(&mut self, id: u16) -> bool {
        let (w, bit) = (usize::from(id) / 64, 1u64 << (id % 64));
        match self.held.get_mut(w) {
            Some(word) if id != 0 && *word & bit != 0 => {
                *word &= !bit;
                true
            }
            _ => false,
        }
    }

    /// Whether a live VM holds tag `id`.
    pub fn is_held(&self, id: u16) -> bool {
        let (w, bit) = (usize::from(id) / 64, 1u64 << (id % 64));
        self.held.get(w).is_some_and(|word| word & bit != 0)
    }

    /// How many tags live VMs hold.
    pub fn held_count(&self) -> usize {
        self.held.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The boot option's name on the kernel command line.
pub const BOOT_OPTION: &str = "mica.vm_ids";

/// `mica.vm_ids=N` on the kernel command line: hand out at most `N` (1 to
/// [`MAX_TAG`]) VM tags, for tests that must run out of them. `Ok(None)`
/// without the option, `Err` with the bad word when it is malformed.
pub fn boot_limit(cmdline: &str) -> Result<Option<u16>, &str> {
    let mut limit = None;
    for word in cmdline.split_ascii_whitespace() {
        let Some(value) = word
            .strip_prefix(BOOT_OPTION)
            .and_then(|rest| rest.strip_prefix('='))
        else {
            if word == BOOT_OPTION {
                return Err(word);
            }
            continue;
        };
        match value.parse::<u16>() {
            Ok(n) if (1..=MAX_TAG).contains(&n) => limit = Some(n),
            _ => return Err(word),
        }
    }
    Ok(limit)
}

#[cfg(test)]
#[path = "tlb_tag_tests.rs"]
mod tests;
