//! What every page-table format Mica builds shares (Sv39, Sv39x4 G-stage,
//! x86 4-level for the kernel, tasks and nested tables): 4 KiB tables of
//! 512 eight-byte entries, reached through a [`TableMemory`]. Pure: host
//! tests give each format a map of boxed tables, the kernel its identity
//! map (`frame_tables`).

/// Bytes in a base page and in a table.
pub const PAGE_SIZE: u64 = 4096;
/// Entries in a table.
pub const ENTRIES: usize = 512;

/// Where page-table pages live: the kernel reaches them through its
/// identity map, host tests through a map of boxed tables.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned table page; its physical address, `None`
    /// when memory ran out (or the walker allocates nothing).
    fn alloc_table(&mut self) -> Option<u64>;
    /// The 512 entries of the table at physical address `table`.
    fn entries(&mut self, table: u64) -> &mut [u64; ENTRIES];
}
