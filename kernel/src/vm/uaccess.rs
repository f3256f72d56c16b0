//! Copying to and from user memory for system calls and drivers (Linux `copy_from_user`,
//! `copy_to_user`, `strncpy_from_user`). Everything goes through the current address
//! space's checked copy, which faults pages in through the normal fault path; a bad
//! pointer anywhere gives `EFAULT`.
#![deny(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use crate::mm::fallible::TryPush;
use x86_64::VirtAddr;

use crate::error::Errno;
use crate::mm::MmError;
use crate::vm::AddressSpace;

/// The current address space (that of the process in the system call).
fn aspace() -> Result<alloc::sync::Arc<AddressSpace>, Errno> {
    super::current().ok_or(Errno::EFAULT)
}

fn to_errno(e: MmError) -> Errno {
    match e {
        MmError::NoMemory => Errno::ENOMEM,
        MmError::Killed => Errno::EINTR,
        _ => Errno::EFAULT,
    }
}

/// A user address, or EFAULT if it is not even canonical.
pub fn user_addr(addr: u64) -> Result<VirtAddr, Errno> {
    VirtAddr::try_new(addr).map_err(|_| Errno::EFAULT)
}

/// Read `buf.len()` bytes from user address `addr`.
pub fn read_bytes(addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    aspace()?
        .copy_from_user(user_addr(addr)?, buf)
        .map_err(to_errno)
}

/// Write `data` to user address `addr`.
pub fn write_bytes(addr: u64, data: &[u8]) -> Result<(), Errno> {
    aspace()?
        .copy_to_user(user_addr(addr)?, data)
        .map_err(to_errno)
}

/// Read a plain value (an integer or a `#[repr(C)]` struct of integers) from user memory.
pub fn read_u64(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    read_bytes(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Write a 32-bit value to user memory.
pub fn write_i32(addr: u64, v: i32) -> Result<(), Errno> {
    write_bytes(addr, &v.to_le_bytes())
}

/// Write up to 8 64-bit words to user memory, in order (timespecs, ioctl structs).
pub fn write_u64s(addr: u64, words: &[u64]) -> Result<(), Errno> {
    let mut raw = [0u8; 64];
    assert!(words.len() <= 8, "write_u64s: at most 8 words");
    for (i, w) in words.iter().enumerate() {
        raw[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    write_bytes(addr, &raw[..words.len() * 8])
}

/// Read a NUL-terminated string of at most `max` bytes (ENAMETOOLONG beyond, EINVAL
/// if not UTF-8).
pub fn read_cstr(addr: u64, max: usize) -> Result<String, Errno> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        // Read up to the end of the page, so we never touch a page we do not need.
        let chunk = (4096 - (at % 4096)) as usize;
        let mut buf = [0u8; 256];
        let n = chunk.min(buf.len());
        read_bytes(at, &mut buf[..n])?;
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.try_reserve(end).map_err(|_| Errno::ENOMEM)?;
            out.extend_from_slice(&buf[..end]);
            break;
        }
        out.try_reserve(n).map_err(|_| Errno::ENOMEM)?;
        out.extend_from_slice(&buf[..n]);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        at += n as u64;
    }
    if out.len() > max {
        return Err(Errno::ENAMETOOLONG);
    }
    String::from_utf8(out).map_err(|_| Errno::EINVAL)
}

/// Read a NULL-terminated array of string pointers (argv, envp). A null `addr` is an
/// empty list. Fails with E2BIG past `max_total` bytes.
pub fn read_cstr_array(addr: u64, max_total: usize) -> Result<Vec<String>, Errno> {
    let mut list = Vec::new();
    if addr == 0 {
        return Ok(list);
    }
    let mut total = 0;
    for i in 0.. {
        let ptr = read_u64(addr + i * 8)?;
        if ptr == 0 {
            break;
        }
        let s = read_cstr(ptr, max_total)?;
        total += s.len() + 1;
        if total > max_total {
            return Err(Errno::E2BIG);
        }
        list.try_push(s)?;
    }
    Ok(list)
}
