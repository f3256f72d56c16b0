//! Allocation that reports failure instead of panicking, for code a user drives (see
//! [`super::gfp`]). Rust's `Vec::push`, `format!` and `collect` abort the kernel when
//! the heap is out; these helpers answer [`NoMemory`] instead, which converts to ENOMEM
//! (`Errno`) or `MmError::NoMemory` with `?`.
//!
//! The standard library already has the other fallible forms: `Vec::try_reserve`,
//! `Box::try_new`, `Arc::try_new`.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::MmError;
use crate::error::Errno;

/// The heap could not provide the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMemory;

impl From<NoMemory> for Errno {
    fn from(_: NoMemory) -> Errno {
        Errno::ENOMEM
    }
}

impl From<NoMemory> for MmError {
    fn from(_: NoMemory) -> MmError {
        MmError::NoMemory
    }
}

impl From<alloc::collections::TryReserveError> for NoMemory {
    fn from(_: alloc::collections::TryReserveError) -> NoMemory {
        NoMemory
    }
}

impl From<core::alloc::AllocError> for NoMemory {
    fn from(_: core::alloc::AllocError) -> NoMemory {
        NoMemory
    }
}

/// `push` that fails instead of aborting.
pub trait TryPush<T> {
    /// Append `value`, or give [`NoMemory`] (and drop nothing: `value` is returned
    /// to nobody, so callers that must keep it push a clone or reserve first).
    fn try_push(&mut self, value: T) -> Result<(), NoMemory>;
}

impl<T> TryPush<T> for Vec<T> {
    fn try_push(&mut self, value: T) -> Result<(), NoMemory> {
        self.try_reserve(1)?;
        self.push(value);
        Ok(())
    }
}

impl<T> TryPush<T> for VecDeque<T> {
    fn try_push(&mut self, value: T) -> Result<(), NoMemory> {
        self.try_reserve(1)?;
        self.push_back(value);
        Ok(())
    }
}

/// `Vec::insert` that fails instead of aborting.
pub fn try_insert<T>(v: &mut Vec<T>, index: usize, value: T) -> Result<(), NoMemory> {
    v.try_reserve(1)?;
    v.insert(index, value);
    Ok(())
}

/// Collect an iterator into a `Vec`, or [`NoMemory`].
pub fn try_collect<T>(items: impl IntoIterator<Item = T>) -> Result<Vec<T>, NoMemory> {
    let iter = items.into_iter();
    let mut out = Vec::new();
    out.try_reserve(iter.size_hint().0)?;
    for item in iter {
        out.try_push(item)?;
    }
    Ok(out)
}

/// A copy of `items`, or [`NoMemory`].
pub fn try_to_vec<T: Clone>(items: &[T]) -> Result<Vec<T>, NoMemory> {
    let mut out = Vec::new();
    out.try_reserve_exact(items.len())?;
    out.extend_from_slice(items);
    Ok(out)
}

/// A copy of `s`, or [`NoMemory`].
pub fn try_string(s: &str) -> Result<String, NoMemory> {
    let mut out = String::new();
    out.try_reserve_exact(s.len())?;
    out.push_str(s);
    Ok(out)
}

/// Append formatted text to `out` (`write!`), or [`NoMemory`] (what was appended before
/// the failure stays).
pub fn try_write_fmt(out: &mut String, args: fmt::Arguments<'_>) -> Result<(), NoMemory> {
    struct Sink<'a>(&'a mut String);
    impl fmt::Write for Sink<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.try_reserve(s.len()).map_err(|_| fmt::Error)?;
            self.0.push_str(s);
            Ok(())
        }
    }
    fmt::write(&mut Sink(out), args).map_err(|_| NoMemory)
}

/// `format!` that gives [`NoMemory`] instead of aborting.
#[macro_export]
macro_rules! try_format {
    ($($arg:tt)*) => {{
        let mut s = alloc::string::String::new();
        $crate::mm::fallible::try_write_fmt(&mut s, format_args!($($arg)*)).map(|()| s)
    }};
}

/// A small map kept as a sorted `Vec`, whose insert can fail (`BTreeMap::insert` cannot:
/// it aborts when a node cannot be allocated). For the handful of entries a driver keeps
/// per open file or per command.
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K: Ord + Copy, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Copy, V> VecMap<K, V> {
    pub const fn new() -> VecMap<K, V> {
        VecMap {
            entries: Vec::new(),
        }
    }

    fn index(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// Insert or replace; the old value if there was one, [`NoMemory`] if there is no
    /// room (the map is unchanged then).
    pub fn try_insert(&mut self, key: K, value: V) -> Result<Option<V>, NoMemory> {
        match self.index(&key) {
            Ok(i) => Ok(Some(core::mem::replace(&mut self.entries[i].1, value))),
            Err(i) => {
                try_insert(&mut self.entries, i, (key, value))?;
                Ok(None)
            }
        }
    }

    /// Take room for `additional` more entries, so that as many inserts after it cannot
    /// fail.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), NoMemory> {
        Ok(self.entries.try_reserve(additional)?)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.index(key).ok().map(|i| self.entries.remove(i).1)
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.index(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.index(key).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Keep the entries for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}
