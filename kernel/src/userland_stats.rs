//! The statistics call on the running kernel: [`StatsHost`] over the
//! frame allocator; and the entropy call's [`EntropyHost`] over the arch
//! layer's hardware source.

use super::Tasks;
use crate::kmain::FRAMES;
use crate::syscall_entropy::EntropyHost;
use crate::syscall_stats::{FrameCounts, StatsHost};

impl StatsHost for Tasks {
    fn frame_counts(&self) -> Option<FrameCounts> {
        let frames = FRAMES.lock();
        Some(FrameCounts {
            free: frames.free_frames(),
            total: frames.total_frames(),
        })
    }

    fn platform_info(&self) -> Option<(u64, usize)> {
        crate::arch::platform_info()
    }
}

impl EntropyHost for Tasks {
    fn hardware_entropy(&mut self) -> Option<u64> {
        crate::arch::hardware_entropy()
    }
}
