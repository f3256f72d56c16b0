//! The tests. Each runs in a child process of the harness, so it may allocate, fork and
//! exit as it likes; it returns `Err(why)` on the first failed check.

use alloc::collections::BTreeMap;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::hint::black_box;
use core::mem::ManuallyDrop;
use core::ptr;

use ulib::heap;
use ulib::process::{self, Ended, WaitStatus};
use ulib::sys::{self, PROT_READ, PROT_WRITE};
use ulib::Errno;

use crate::check;
use crate::harness::{reap, TestResult};
use crate::EXEC_CHECK;

const PAGE: usize = 4096;
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const SIGSEGV: u8 = 11;
const RW: usize = PROT_READ | PROT_WRITE;

// ---- helpers ----

/// Fork; the child runs `f` and exits with its result. Returns the child's pid.
fn spawn(f: impl FnOnce() -> i32) -> Result<usize, String> {
    match sys::fork() {
        Ok(0) => sys::exit_group(f()),
        Ok(pid) => Ok(pid),
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Reap child `pid` and return how it ended (checking that wait4 returned `pid`).
fn ended(pid: usize, what: &str) -> Result<Ended, String> {
    let (got, status) = reap(pid).map_err(|e| format!("{what}: wait4({pid}): {e}"))?;
    check!(got == pid, "{what}: wait4({pid}) returned pid {got}");
    Ok(WaitStatus(status).decode())
}

/// Reap child `pid` and check that it exited with `code`.
fn expect_exit(pid: usize, code: u8, what: &str) -> TestResult {
    match ended(pid, what)? {
        Ended::Exited(c) if c == code => Ok(()),
        how => Err(format!("{what}: child {how}, expected exit {code}")),
    }
}

/// Reap child `pid` and check that signal `sig` killed it.
fn expect_signal(pid: usize, sig: u8, what: &str) -> TestResult {
    match ended(pid, what)? {
        Ended::Signalled(s) if s == sig => Ok(()),
        how => Err(format!("{what}: child {how}, expected signal {sig}")),
    }
}

/// A child that writes one byte at `addr` and then exits 0; the callers expect it to die
/// of SIGSEGV instead (or, for a writable page, to exit 0 with its own COW copy changed).
fn child_writes(addr: usize) -> Result<usize, String> {
    spawn(move || {
        // SAFETY: `addr` is (or was) in an anonymous mapping this process created, and no
        // Rust reference into it is live while the child runs this closure. If the page
        // is not writable the write faults and the kernel ends the child with SIGSEGV,
        // which is what the test looks for; otherwise it changes the child's copy only.
        unsafe { ptr::write_volatile(addr as *mut u8, 0x5a) };
        0
    })
}

/// A child that reads one byte at `addr` and exits 0 (expected to die of SIGSEGV when
/// `addr` is not mapped).
fn child_reads(addr: usize) -> Result<usize, String> {
    spawn(move || {
        // SAFETY: as in `child_writes`; a read of an unmapped page faults and the kernel
        // ends the child with SIGSEGV, which is what the test looks for.
        let b = unsafe { ptr::read_volatile(addr as *const u8) };
        black_box(b);
        0
    })
}

/// The byte at offset `i` of a buffer filled with `seed`.
fn pattern(i: usize, seed: u8) -> u8 {
    (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed
}

fn fill(buf: &mut [u8], seed: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(i, seed);
    }
    black_box(buf);
}

/// The first offset of `buf` that does not hold `pattern(_, seed)`.
fn first_bad(buf: &[u8], seed: u8) -> Option<usize> {
    let buf = black_box(buf);
    buf.iter()
        .enumerate()
        .position(|(i, &b)| b != pattern(i, seed))
}

/// A private anonymous mapping, unmapped on drop. Its bytes are reachable as slices
/// only while its protection allows it.
struct Mapping {
    addr: usize,
    len: usize,
    /// The protection of every page (the intersection, after a partial mprotect).
    prot: usize,
}

impl Mapping {
    fn new(len: usize, prot: usize) -> Result<Self, String> {
        let addr = sys::mmap_anonymous(len, prot).map_err(|e| format!("mmap({len}): {e}"))?;
        Ok(Mapping { addr, len, prot })
    }

    fn bytes(&self) -> &[u8] {
        assert!(self.prot & PROT_READ != 0, "mapping not readable");
        // SAFETY: addr..addr+len is our own mapping, readable on every page (`prot`),
        // mapped for as long as `self` lives; writes to it need `&mut self`.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        assert!(self.prot & RW == RW, "mapping not writable");
        // SAFETY: addr..addr+len is our own mapping, readable and writable on every page,
        // mapped for as long as `self` lives, and `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }

    /// mprotect(addr + off, len, prot).
    fn protect(&mut self, off: usize, len: usize, prot: usize) -> Result<(), String> {
        assert!(off + len <= self.len);
        // SAFETY: the range is inside our own mapping, and `&mut self` means no slice of
        // it (from `bytes`/`bytes_mut`) is live; `self.prot` is updated so that later
        // slices are only made where the new protection allows.
        unsafe { sys::mprotect(self.addr + off, len, prot) }
            .map_err(|e| format!("mprotect({:#x}, {len}, {prot}): {e}", self.addr + off))?;
        self.prot = if off == 0 && len == self.len {
            prot
        } else {
            self.prot & prot
        };
        Ok(())
    }

    /// munmap, reporting its result (drop ignores it).
    fn unmap(self) -> Result<(), String> {
        let m = ManuallyDrop::new(self);
        // SAFETY: the mapping is ours, `self` is consumed so no slice of it is live, and
        // ManuallyDrop keeps Drop from unmapping it a second time.
        unsafe { sys::munmap(m.addr, m.len) }
            .map(|_| ())
            .map_err(|e| format!("munmap({:#x}, {}): {e}", m.addr, m.len))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and, being dropped, has no live slice.
        let _ = unsafe { sys::munmap(self.addr, self.len) };
    }
}

/// Whether `path` can be opened for reading.
fn can_open(path: &str) -> bool {
    let Ok(c) = CString::new(path) else {
        return false;
    };
    match sys::open(&c, sys::O_RDONLY, 0) {
        Ok(fd) => {
            let _ = sys::close(fd);
            true
        }
        Err(_) => false,
    }
}

/// The first of `candidates` that can be opened.
fn find_program(candidates: &[String]) -> Result<String, String> {
    candidates
        .iter()
        .find(|p| can_open(p))
        .cloned()
        .ok_or_else(|| format!("none of {candidates:?} can be opened"))
}

/// Where a program NAME lives: /bin/NAME (memkernel's initramfs), else next to this
/// program (target/user/bin on a host); for this program itself, argv[0] first and
/// /init last (booted with `--init`).
fn program_path(name: &str) -> Result<String, String> {
    let argv0 = ulib::env::program_name();
    let mut candidates = Vec::new();
    let own = name == "t_rust";
    if own && argv0.contains('/') {
        candidates.push(String::from(argv0));
    }
    candidates.push(format!("/bin/{name}"));
    if let Some((dir, _)) = argv0.rsplit_once('/') {
        candidates.push(format!("{dir}/{name}"));
    }
    if own {
        candidates.push(String::from("/init"));
    }
    find_program(&candidates)
}

// ---- 1. fork + wait4 ----

pub fn fork_wait4() -> TestResult {
    let me = sys::getpid().map_err(|e| format!("getpid: {e}"))?;
    let parent = sys::getppid().map_err(|e| format!("getppid: {e}"))?;
    check!(me != parent, "getpid() == getppid() == {me}");

    // The child checks that its parent is us and that it is someone else, then exits 7.
    let pid = spawn(move || {
        if sys::getppid() != Ok(me) {
            return 1;
        }
        match sys::getpid() {
            Ok(p) if p != me && p != 0 => 7,
            _ => 2,
        }
    })?;
    check!(pid != me, "fork returned our own pid {me} to the parent");
    check!(sys::getpid() == Ok(me), "getpid changed after fork");
    let mut status = -1;
    let got = loop {
        match sys::wait4(pid as isize, &mut status, 0) {
            Err(Errno::EINTR) => continue,
            r => break r,
        }
    };
    check!(got == Ok(pid), "wait4({pid}) returned {got:?}");
    // Linux's encoding: WIFEXITED = (status & 0x7f) == 0, WEXITSTATUS = (status >> 8) & 0xff.
    check!(
        status & 0x7f == 0,
        "status {status:#x}: not WIFEXITED (child exit 1: wrong getppid, 2: wrong getpid)"
    );
    let code = (status >> 8) & 0xff;
    check!(
        code == 7,
        "status {status:#x}: WEXITSTATUS {code}, expected 7 (1: wrong getppid, 2: wrong getpid)"
    );
    check!(
        status == 0x700,
        "status {status:#x}, expected exactly 0x700"
    );
    check!(
        WaitStatus(status).decode() == Ended::Exited(7),
        "ulib decodes {status:#x} as {:?}",
        WaitStatus(status).decode()
    );

    // fork's return value is the child's getpid: the child exits with its pid's low byte.
    let pid = spawn(|| sys::getpid().map_or(-1, |p| (p & 0xff) as i32))?;
    expect_exit(
        pid,
        (pid & 0xff) as u8,
        "child exiting with getpid() & 0xff",
    )?;

    // Exit codes 0 and 255 come through as they are.
    for code in [0u8, 255] {
        let pid = spawn(move || i32::from(code))?;
        expect_exit(pid, code, "child exiting with 0/255")?;
    }

    // Nothing left to wait for.
    let r = sys::wait4(-1, &mut status, 0);
    check!(
        r == Err(Errno::ECHILD),
        "wait4(-1) with no children returned {r:?}, expected ECHILD"
    );
    Ok(())
}

// ---- 2. heap ----

pub fn heap() -> TestResult {
    const BLOCK: usize = 4 * KIB;
    const BLOCKS: usize = MIB / BLOCK;
    let (used0, _) = heap::usage();

    // 1 MiB in 4 KiB blocks, each with its own contents.
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        let mut b = vec![0u8; BLOCK];
        fill(&mut b, i as u8);
        blocks.push(b);
    }
    for (i, b) in blocks.iter().enumerate() {
        check!(b.len() == BLOCK, "block {i}: length {}", b.len());
        if let Some(off) = first_bad(b, i as u8) {
            return Err(format!("block {i}: wrong byte at offset {off}"));
        }
    }
    let (used1, owned1) = heap::usage();
    check!(
        used1 - used0 >= MIB,
        "1 MiB allocated but the heap's use grew by {} bytes only",
        used1 - used0
    );
    // The heap is on brk: every block lies below the program break.
    // SAFETY: brk(0) only asks for the current break; it moves nothing.
    let brk = unsafe { sys::brk(0) }.map_err(|e| format!("brk(0): {e}"))?;
    for (i, b) in blocks.iter().enumerate() {
        let p = b.as_ptr() as usize;
        check!(
            p + BLOCK <= brk,
            "block {i} at {p:#x} is not below the break {brk:#x}"
        );
    }

    // Free every other block, allocate them again with other contents: the freed space is
    // reused (the heap does not grow) and the other blocks are untouched.
    for b in blocks.iter_mut().step_by(2) {
        *b = Vec::new();
    }
    for (i, b) in blocks.iter_mut().enumerate().step_by(2) {
        let mut nb = vec![0u8; BLOCK];
        fill(&mut nb, !(i as u8));
        *b = nb;
    }
    for (i, b) in blocks.iter().enumerate() {
        let seed = if i % 2 == 0 { !(i as u8) } else { i as u8 };
        if let Some(off) = first_bad(b, seed) {
            return Err(format!(
                "block {i} after reallocation: wrong byte at offset {off}"
            ));
        }
    }
    let (_, owned2) = heap::usage();
    check!(
        owned2 == owned1,
        "reallocating freed blocks grew the heap from {owned1} to {owned2} bytes"
    );

    // All of it freed: one 1 MiB allocation fits in the space it leaves.
    drop(blocks);
    let (used, _) = heap::usage();
    check!(
        used == used0,
        "after freeing everything {used} bytes are in use, {used0} before"
    );
    let mut big: Vec<u32> = Vec::with_capacity(MIB / 4);
    big.extend((0..MIB as u32 / 4).map(|i| i.wrapping_mul(2_654_435_761)));
    check!(
        big.iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u32).wrapping_mul(2_654_435_761)),
        "1 MiB Vec<u32>: wrong contents"
    );
    let (_, owned3) = heap::usage();
    check!(
        owned3 == owned1,
        "a 1 MiB allocation after freeing 1 MiB grew the heap from {owned1} to {owned3} bytes"
    );
    drop(big);
    collections(used0)
}

/// The heap through alloc's collections: a String grown by reallocation and parsed
/// back, a BTreeMap filled in scrambled order; at the end `used0` bytes in use again.
fn collections(used0: usize) -> TestResult {
    // String: grows by reallocation; format! and parsing back.
    let mut s = String::new();
    for i in 0..5000u32 {
        write!(s, "{i},").map_err(|_| String::from("write! to a String failed"))?;
    }
    let mut n = 0u32;
    for (i, part) in s.trim_end_matches(',').split(',').enumerate() {
        check!(
            part.parse::<u32>() == Ok(i as u32),
            "String part {i} is {part:?}"
        );
        n += 1;
    }
    check!(n == 5000, "String holds {n} numbers, expected 5000");
    let shout = format!("{}-{}", s.len(), s.to_uppercase().len());
    check!(
        shout == format!("{0}-{0}", s.len()),
        "format!/to_uppercase: {shout}"
    );

    // BTreeMap: inserts in scrambled order, lookups, sorted iteration, removals.
    let mut map: BTreeMap<u32, String> = BTreeMap::new();
    for k in 0..3000u32 {
        let key = (k * 7919) % 10007;
        check!(
            map.insert(key, format!("value {key}")).is_none(),
            "key {key} inserted twice"
        );
    }
    check!(map.len() == 3000, "BTreeMap has {} entries", map.len());
    for k in 0..3000u32 {
        let key = (k * 7919) % 10007;
        let want = format!("value {key}");
        check!(
            map.get(&key) == Some(&want),
            "map[{key}] = {:?}",
            map.get(&key)
        );
    }
    check!(
        map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b),
        "BTreeMap keys not in order"
    );
    map.retain(|k, _| k % 2 == 0);
    check!(map.keys().all(|k| k % 2 == 0), "an odd key survived retain");
    let evens = (0..3000u32).filter(|k| (k * 7919) % 10007 % 2 == 0).count();
    check!(
        map.len() == evens,
        "{} entries after retain, expected {evens}",
        map.len()
    );
    drop(map);
    drop(s);
    drop(shout);

    let (used, _) = heap::usage();
    check!(
        used == used0,
        "at the end {used} bytes of heap are in use, {used0} at the start"
    );
    Ok(())
}

// ---- 3. mmap, munmap, mprotect ----

pub fn mmap_mprotect() -> TestResult {
    const LEN: usize = 4 * PAGE;

    // Anonymous RW memory: page-aligned, zero-filled, keeps what is written.
    let mut m = Mapping::new(LEN, RW)?;
    check!(m.addr % PAGE == 0, "mmap returned {:#x}", m.addr);
    if let Some(off) = m.bytes().iter().position(|&b| b != 0) {
        return Err(format!("fresh anonymous mapping: byte {off} is not zero"));
    }
    fill(m.bytes_mut(), 0x11);
    if let Some(off) = first_bad(m.bytes(), 0x11) {
        return Err(format!("mapping: wrong byte read back at offset {off}"));
    }
    // A child sees the same contents (fork copies the mapping).
    let pid = spawn(|| i32::from(first_bad(m.bytes(), 0x11).is_some()))?;
    expect_exit(pid, 0, "child reading the parent's mapping")?;

    // munmap: the range is gone; touching it is SIGSEGV.
    let addr = m.addr;
    m.unmap()?;
    let pid = child_reads(addr)?;
    expect_signal(pid, SIGSEGV, "child reading an unmapped page")?;
    let pid = child_writes(addr + PAGE)?;
    expect_signal(pid, SIGSEGV, "child writing an unmapped page")?;

    // mprotect(PROT_READ): reads still work, a write is SIGSEGV (signal 11).
    let mut m = Mapping::new(LEN, RW)?;
    fill(m.bytes_mut(), 0x22);
    m.protect(0, LEN, PROT_READ)?;
    if let Some(off) = first_bad(m.bytes(), 0x22) {
        return Err(format!(
            "after mprotect(PROT_READ): wrong byte at offset {off}"
        ));
    }
    let pid = child_writes(m.addr + PAGE + 5)?;
    let (got, status) = reap(pid).map_err(|e| format!("wait4({pid}): {e}"))?;
    check!(got == pid, "wait4({pid}) returned {got}");
    check!(
        status & 0x7f == i32::from(SIGSEGV),
        "child writing a PROT_READ page: wait status {status:#x} ({}), expected signal 11",
        WaitStatus(status).decode()
    );
    if let Some(off) = first_bad(m.bytes(), 0x22) {
        return Err(format!(
            "after the child's failed write: wrong byte at offset {off}"
        ));
    }

    // Back to RW: writable again, and the contents stayed.
    m.protect(0, LEN, RW)?;
    if let Some(off) = first_bad(m.bytes(), 0x22) {
        return Err(format!("after mprotect(RW): wrong byte at offset {off}"));
    }
    fill(m.bytes_mut(), 0x33);
    if let Some(off) = first_bad(m.bytes(), 0x33) {
        return Err(format!(
            "after mprotect(RW) and a write: wrong byte at offset {off}"
        ));
    }

    // One page of the middle read-only (the mapping is split): its neighbours stay
    // writable, it does not.
    m.protect(PAGE, PAGE, PROT_READ)?;
    let pid = child_writes(m.addr)?;
    expect_exit(pid, 0, "child writing the page before the PROT_READ one")?;
    let pid = child_writes(m.addr + 2 * PAGE)?;
    expect_exit(pid, 0, "child writing the page after the PROT_READ one")?;
    let pid = child_writes(m.addr + PAGE)?;
    expect_signal(
        pid,
        SIGSEGV,
        "child writing the PROT_READ page in the middle",
    )?;
    if let Some(off) = first_bad(m.bytes(), 0x33) {
        return Err(format!(
            "after the children's writes: wrong byte at offset {off} (a child's write showed)"
        ));
    }
    m.unmap()
}

// ---- 4. copy-on-write ----

pub fn cow() -> TestResult {
    const LEN: usize = 64 * KIB;
    let mut heap_buf = vec![0u8; LEN];
    fill(&mut heap_buf, 0xa5);
    let mut map = Mapping::new(LEN, RW)?;
    fill(map.bytes_mut(), 0x3c);

    // The child overwrites every byte of both buffers, checks its own copy, exits.
    let pid = spawn(|| {
        fill(&mut heap_buf, 0x5a);
        fill(map.bytes_mut(), 0xc3);
        if first_bad(&heap_buf, 0x5a).is_some() {
            return 1;
        }
        if first_bad(map.bytes(), 0xc3).is_some() {
            return 2;
        }
        0
    })?;
    expect_exit(
        pid,
        0,
        "child rewriting the buffers (1: heap copy wrong, 2: mmap copy wrong)",
    )?;

    // The parent's copies are untouched.
    if let Some(off) = first_bad(&heap_buf, 0xa5) {
        return Err(format!(
            "heap buffer: the child's write showed in the parent at offset {off}"
        ));
    }
    if let Some(off) = first_bad(map.bytes(), 0x3c) {
        return Err(format!(
            "mmap buffer: the child's write showed in the parent at offset {off}"
        ));
    }

    // The parent, alone again, writes its own copies.
    fill(&mut heap_buf, 0x77);
    fill(map.bytes_mut(), 0x88);
    if let Some(off) = first_bad(&heap_buf, 0x77) {
        return Err(format!("heap buffer: parent's write lost at offset {off}"));
    }
    if let Some(off) = first_bad(map.bytes(), 0x88) {
        return Err(format!("mmap buffer: parent's write lost at offset {off}"));
    }
    map.unmap()
}

// ---- 5. execve ----

/// What the re-executed image checks: argv is exactly
/// `[path, EXEC_CHECK, "a", "b c", "", PID]` and getpid() is still PID. Exit 42 if so.
pub fn exec_check(args: &[&str]) -> i32 {
    let [_, _, a, bc, empty, pid] = args else {
        return 43;
    };
    if (*a, *bc, *empty) != ("a", "b c", "") {
        return 44;
    }
    match pid.parse::<usize>() {
        Ok(p) if sys::getpid() == Ok(p) => 42,
        _ => 45,
    }
}

pub fn execve() -> TestResult {
    // /bin/hello with arguments; its greeting would only clutter the test output, so the
    // child closes fd 1 first (hello ignores write errors).
    let hello = program_path("hello")?;
    let pid = spawn(|| {
        let _ = sys::close(1);
        let _ = process::exec(&hello, &["hello", "a", "b c"]);
        100
    })?;
    expect_exit(
        pid,
        0,
        &format!("execve({hello:?}, [hello, a, \"b c\"]) (100: execve failed)"),
    )?;

    // This program again: the arguments arrive exactly, the pid stays.
    let me = program_path("t_rust")?;
    let pid = spawn(|| {
        let Ok(pid) = sys::getpid() else {
            return 101;
        };
        let pid = format!("{pid}");
        let _ = process::exec(&me, &[&me, EXEC_CHECK, "a", "b c", "", &pid]);
        100
    })?;
    expect_exit(
        pid,
        42,
        &format!("execve({me:?}) with arguments (100: execve failed, 43: argc, 44: argv, 45: pid)"),
    )?;

    // A missing file: -ENOENT, and the caller goes on with its memory intact.
    let pid = spawn(|| {
        let keep = vec![0x5au8; 3 * PAGE];
        let e = process::exec("/nonexistent/t_rust_nope", &["nope"]);
        match e {
            Errno::ENOENT if keep.iter().all(|&b| b == 0x5a) => 0,
            Errno::ENOENT => 2,
            _ => 1,
        }
    })?;
    expect_exit(
        pid,
        0,
        "execve of a missing file (1: not ENOENT, 2: memory changed)",
    )
}

// ---- 6. a bad pointer ----

/// write(2) with a raw pointer: ulib's `sys::write` takes a slice, and a slice cannot
/// be made from an invalid pointer. Returns rax (-errno on failure).
fn raw_write(fd: usize, buf: usize, len: usize) -> isize {
    let ret: isize;
    // SAFETY: write(2) only reads from `buf` (the kernel checks the user range and
    // returns -EFAULT when it is not mapped); it changes no memory of ours. Linux x86-64
    // convention: number in rax, arguments in rdi/rsi/rdx, result in rax; the CPU
    // clobbers rcx and r11. The kernel runs on its own stack.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") ulib::nr::WRITE as isize => ret,
            in("rdi") fd,
            in("rsi") buf,
            in("rdx") len,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, readonly),
        );
    }
    ret
}

pub fn bad_pointer() -> TestResult {
    const EFAULT: isize = Errno::EFAULT.0 as isize;
    let r = raw_write(1, 1, 10);
    check!(
        r == -EFAULT,
        "write(1, 0x1, 10) returned {r}, expected -EFAULT (-14)"
    );
    // The first kernel-half address.
    let r = raw_write(1, 0xffff_8000_0000_0000, 10);
    check!(
        r == -EFAULT,
        "write(1, 0xffff800000000000, 10) returned {r}, expected -EFAULT (-14)"
    );
    // A page that was mapped and is not any more.
    let m = Mapping::new(PAGE, RW)?;
    let gone = m.addr;
    m.unmap()?;
    let r = raw_write(1, gone, 10);
    check!(
        r == -EFAULT,
        "write(1, an unmapped page, 10) returned {r}, expected -EFAULT (-14)"
    );

    // And the program goes on: system calls work and memory is intact.
    check!(sys::getpid().is_ok(), "getpid failed after -EFAULT");
    let r = sys::write(1, b"");
    check!(r == Ok(0), "write(1, \"\", 0) returned {r:?}");
    let v: Vec<u32> = (0..1000).collect();
    check!(
        v.iter().sum::<u32>() == 499_500,
        "heap broken after -EFAULT"
    );
    Ok(())
}
