//! What the kernel passed on the initial stack besides the arguments: the environment
//! (`envp`) and the auxiliary vector (`auxv`), saved by `_start`.

use core::ffi::c_char;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::start::arg_str;

// Auxiliary vector types (Linux include/uapi/linux/auxvec.h).
pub const AT_NULL: usize = 0;
pub const AT_PHDR: usize = 3;
pub const AT_PHENT: usize = 4;
pub const AT_PHNUM: usize = 5;
pub const AT_PAGESZ: usize = 6;
pub const AT_ENTRY: usize = 9;
pub const AT_RANDOM: usize = 25;
pub const AT_EXECFN: usize = 31;

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());
static ENVP: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());
static AUXV: AtomicPtr<usize> = AtomicPtr::new(core::ptr::null_mut());

/// Called once by `_start` with the pointers it found on the initial stack.
pub(crate) fn init(
    argc: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    auxv: *const usize,
) {
    ARGC.store(argc, Ordering::Relaxed);
    ARGV.store(argv.cast_mut(), Ordering::Relaxed);
    ENVP.store(envp.cast_mut(), Ordering::Relaxed);
    AUXV.store(auxv.cast_mut(), Ordering::Relaxed);
}

/// argv[0], or "?" when there is none.
pub fn program_name() -> &'static str {
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() || ARGC.load(Ordering::Relaxed) == 0 {
        return "?";
    }
    // SAFETY: `init` stored the kernel's argv, with at least one 'static string.
    unsafe { arg_str(*argv) }
}

/// The kernel's NULL-terminated `envp` array (what execve should pass on), or null
/// before `_start` ran.
pub fn envp() -> *const *const c_char {
    ENVP.load(Ordering::Relaxed)
}

/// The environment strings, `NAME=value`.
pub fn vars() -> impl Iterator<Item = &'static str> {
    let mut p = envp();
    core::iter::from_fn(move || {
        // SAFETY: envp is the kernel's NULL-terminated array of 'static strings (or
        // null); we stop at its NULL.
        unsafe {
            if p.is_null() || (*p).is_null() {
                return None;
            }
            let s = arg_str(*p);
            p = p.add(1);
            Some(s)
        }
    })
}

/// The value of environment variable `name`.
pub fn var(name: &str) -> Option<&'static str> {
    vars().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The auxiliary vector entry `key` (e.g. [`AT_PAGESZ`]), if the kernel gave one.
pub fn auxv(key: usize) -> Option<usize> {
    let mut p = AUXV.load(Ordering::Relaxed) as *const usize;
    if p.is_null() {
        return None;
    }
    loop {
        // SAFETY: auxv is the kernel's array of (type, value) pairs ending with AT_NULL;
        // we stop at AT_NULL.
        let (k, v) = unsafe { (*p, *p.add(1)) };
        if k == AT_NULL {
            return None;
        }
        if k == key {
            return Some(v);
        }
        // SAFETY: not at AT_NULL yet, so the next pair exists.
        p = unsafe { p.add(2) };
    }
}
