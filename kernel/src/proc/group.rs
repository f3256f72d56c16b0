//! Process groups and sessions, and `kill` (Linux `kernel/sys.c` `setpgid`, `setsid`;
//! `kernel/signal.c` `kill_something_info`).
#![forbid(unsafe_code)]

use super::{lookup, sched, signal, table, Pid, State};
use crate::error::Errno;

/// Who `kill` signals (Linux `kill_something_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// `pid > 0`: that process.
    Pid(Pid),
    /// `pid == 0`: the caller's process group; `pid < -1`: group `-pid`.
    Group(Pid),
    /// `pid == -1`: every process but init and the caller.
    All,
}

/// `kill(pid, sig)`: send `sig` (1..=64, or 0 to check existence) to the target.
/// ESRCH if nobody matched, EINVAL for a bad signal number.
pub fn kill(target: KillTarget, sig: i32) -> Result<(), Errno> {
    if !(0..=signal::NSIG).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    let me = sched::current();
    let info = signal::SigInfo {
        signo: sig,
        code: signal::SI_USER,
        pid: me.pid,
        addr: 0,
        status: 0,
    };
    // Signals go out under the table lock, as Linux's `kill_pgrp` walks the group under
    // `tasklist_lock`: nothing to collect, so nothing to allocate. (Sending takes the
    // target's lock and may wake it: process lock, then the run queue; never the table.)
    let matched = table(|t| {
        let mut matched = 0;
        for p in t.values() {
            let (pgid, zombie) = p.with(|i| (i.pgid, matches!(i.state, State::Zombie(_))));
            let hit = match target {
                KillTarget::Pid(pid) => p.pid == pid,
                KillTarget::Group(g) => pgid == g && !zombie,
                KillTarget::All => p.pid != 1 && p.pid != me.pid && !zombie,
            };
            if hit {
                matched += 1;
                if sig != 0 && !zombie {
                    signal::send(p, info);
                }
            }
        }
        matched
    });
    if matched == 0 {
        return Err(Errno::ESRCH);
    }
    Ok(())
}

/// `setpgid(pid, pgid)`: put `pid` (0: the caller; else the caller or one of its
/// children) into group `pgid` (0: its own pid). EPERM across sessions or for a
/// session leader, ESRCH for another process (Linux `sys_setpgid`, simplified: no
/// exec check).
pub fn setpgid(pid: Pid, pgid: Pid) -> Result<(), Errno> {
    let me = sched::current();
    let pid = if pid == 0 { me.pid } else { pid };
    let target = lookup(pid).ok_or(Errno::ESRCH)?;
    let (ppid, sid) = target.with(|i| (i.ppid, i.sid));
    let my_sid = me.with(|i| i.sid);
    if pid != me.pid && ppid != me.pid {
        return Err(Errno::ESRCH);
    }
    if sid != my_sid || sid == pid {
        return Err(Errno::EPERM);
    }
    let pgid = if pgid == 0 { pid } else { pgid };
    if pgid != pid {
        // The group must exist in the same session.
        let ok = table(|t| {
            t.values()
                .any(|p| p.with(|i| i.pgid == pgid && i.sid == my_sid))
        });
        if !ok {
            return Err(Errno::EPERM);
        }
    }
    target.with(|i| i.pgid = pgid);
    Ok(())
}

/// `getpgid(pid)` (0: the caller) and `getsid(pid)`.
pub fn getpgid_getsid(pid: Pid) -> Result<(Pid, Pid), Errno> {
    let p = if pid == 0 {
        sched::current()
    } else {
        lookup(pid).ok_or(Errno::ESRCH)?
    };
    Ok(p.with(|i| (i.pgid, i.sid)))
}

/// `setsid()`: a new session and group led by the caller; EPERM if it already leads
/// a group.
pub fn setsid() -> Result<Pid, Errno> {
    let me = sched::current();
    let leads = table(|t| {
        t.values()
            .any(|p| p.pid != me.pid && p.with(|i| i.pgid == me.pid))
    });
    if leads || me.with(|i| i.pgid == me.pid) {
        return Err(Errno::EPERM);
    }
    me.with(|i| {
        i.pgid = me.pid;
        i.sid = me.pid;
    });
    Ok(me.pid)
}
