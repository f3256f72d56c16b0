//! The one post-order walk of a page-table tree. Everything that must see a table after
//! the tables below it goes through [`walk`] with its own visitor: tearing the tree down
//! (`Drop for PageTable`), counting and checking the tables ([`PageTable::table_pages`],
//! [`PageTable::check_tables`]), and freeing the emptied tables on one address's path
//! (`PageTable::prune`).
//!
//! [`PageTable::table_pages`]: super::PageTable::table_pages
//! [`PageTable::check_tables`]: super::PageTable::check_tables

use core::ops::ControlFlow;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::structures::paging::PhysFrame;
use x86_64::VirtAddr;

use super::{entries, index, table_frame, ENTRIES};

/// How a [`walk`] reads the entries it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entries {
    /// Leave them as they are.
    Keep,
    /// Empty each one as it is read (teardown): what the entry owned passes to the visitor.
    Take,
}

/// What a [`walk`] tells its visitor, in walk order.
pub(super) enum Visit {
    /// About to read the entries of `table`.
    Enter { table: PhysFrame },
    /// A non-empty level-1 entry, as it was read.
    Leaf(u64),
    /// Done with `table`, at `level` (4 = root .. 1 = leaf table), and with every table
    /// below it. `used` of its entries in the range were non-empty when read; `parent` is the table above and its entry that points to
    /// `table` (`None` for the root).
    Leave {
        table: PhysFrame,
        level: u8,
        used: u32,
        parent: Option<(PhysFrame, &'static AtomicU64)>,
    },
}

/// Walk the tree under `root` through the entries of every page in [first, last] (page
/// addresses, `first <= last`), depth first in address order. For each table: `Enter`,
/// then its entries in the range (a `Leaf` for each non-empty level-1 entry, the walk of
/// the table below for each non-empty entry above level 1), then `Leave`. So every table
/// is left after all the tables below it, the root last. Missing tables are skipped.
/// Stops at the first `Break` of `visit` and returns it.
pub(super) fn walk<B>(
    root: PhysFrame,
    first: VirtAddr,
    last: VirtAddr,
    mode: Entries,
    mut visit: impl FnMut(Visit) -> ControlFlow<B>,
) -> ControlFlow<B> {
    walk_table(root, 4, None, (Some(first), Some(last)), mode, &mut visit)
}

/// The walk of `table` at `level`. `bounds` holds the first and the last page of the
/// range where they fall inside this table (`None`: the range goes on past that side).
fn walk_table<B, F>(
    table: PhysFrame,
    level: u8,
    parent: Option<(PhysFrame, &'static AtomicU64)>,
    bounds: (Option<VirtAddr>, Option<VirtAddr>),
    mode: Entries,
    visit: &mut F,
) -> ControlFlow<B>
where
    F: FnMut(Visit) -> ControlFlow<B>,
{
    visit(Visit::Enter { table })?;
    let (first, last) = bounds;
    let lo = first.map_or(0, |va| index(va, level));
    let hi = last.map_or(ENTRIES - 1, |va| index(va, level));
    let mut used = 0;
    for (i, entry) in (lo..=hi).zip(&entries(table)[lo..=hi]) {
        let raw = match mode {
            Entries::Keep => entry.load(Ordering::Acquire),
            Entries::Take => entry.swap(0, Ordering::AcqRel),
        };
        if raw == 0 {
            continue;
        }
        used += 1;
        if level == 1 {
            visit(Visit::Leaf(raw))?;
        } else {
            // Only the first and the last entry can lead to a table the range covers in
            // part; the tables between are walked whole.
            let inner = (first.filter(|_| i == lo), last.filter(|_| i == hi));
            let child = table_frame(raw);
            walk_table(child, level - 1, Some((table, entry)), inner, mode, visit)?;
        }
    }
    visit(Visit::Leave {
        table,
        level,
        used,
        parent,
    })
}
