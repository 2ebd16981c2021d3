//! Linux capabilities of the calling thread: read them, and drop them once the privileged
//! work (opening raw sockets) is done.
//!
//! What the TCP punch needs, and when:
//! * CAP_NET_RAW: `socket(SOCK_RAW)` for crafted SYNs and the sniffer. An open raw socket keeps
//!   working without it, so it goes right after [`crate::io::raw_tcp::RawTcp::open`].
//! * CAP_NET_ADMIN: TCP_REPAIR, to adopt a connection on a crafted 4-tuple
//!   ([`crate::io::adopt`]); keep it (`keep_only(1 << CAP_NET_ADMIN)`) when crafting, or drop
//!   everything ([`drop_all`]) for plain simultaneous open.
//!
//! Two ways to have them:
//! * root (`sudo natlens …`). After the drop the thread has only what it kept, but its user is
//!   still 0, so programs it executes (`nft` for the RST guard, [`crate::io::rst_guard`]) get a
//!   full set again at exec. That is deliberate: the guard must be removable after the drop.
//!   The bounding set and `no_new_privs` are left alone for that reason.
//! * file capabilities instead of root: `sudo setcap cap_net_raw+ep $(command -v natlens)` is
//!   enough for crafted SYNs; adopting needs `cap_net_raw,cap_net_admin+ep`. The RST guard runs
//!   `nft`, which an unprivileged user's child only runs with CAP_NET_ADMIN if natlens passes
//!   it on ([`crate::io::rst_guard`] raises it as an ambient capability for that one exec).
//!
//! `capset(2)` changes the calling thread only. Call these before other threads are started
//! (they inherit the sets), or on the thread that punches.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Capability numbers used here (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three capability sets of a thread, one bit per capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

impl CapSets {
    /// True when capability `cap` is effective.
    pub fn has(&self, cap: u32) -> bool {
        self.effective & (1u64 << cap) != 0
    }
}

fn join(data: [CapData; 2], pick: impl Fn(&CapData) -> u32) -> u64 {
    u64::from(pick(&data[0])) | (u64::from(pick(&data[1])) << 32)
}

/// The calling thread's capability sets.
pub fn current() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a version-3 header and room for its two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CapSets {
        effective: join(data, |d| d.effective),
        permitted: join(data, |d| d.permitted),
        inheritable: join(data, |d| d.inheritable),
    })
}

/// Sets the calling thread's three capability sets. Only a raw syscall and no allocation, so
/// it may run between fork and exec.
fn set(sets: CapSets) -> io::Result<()> {
    let split = |set: u64| [set as u32, (set >> 32) as u32];
    let (eff, perm, inh) = (
        split(sets.effective),
        split(sets.permitted),
        split(sets.inheritable),
    );
    let data = [0, 1].map(|i| CapData {
        effective: eff[i],
        permitted: perm[i],
        inheritable: inh[i],
    });
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) on the calling thread (pid 0) with a version-3 header and two structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps only the capabilities in `keep` (bit `1 << cap`) in the calling thread's effective
/// and permitted sets, clears its inheritable and ambient sets; returns the sets before.
///
/// Lowering capabilities never needs privilege, so this only fails on a kernel without
/// capabilities.
pub fn keep_only(keep: u64) -> io::Result<CapSets> {
    let before = current()?;
    let effective = before.effective & keep;
    let permitted = before.permitted & keep;
    set(CapSets {
        effective,
        permitted,
        inheritable: 0,
    })?;
    // SAFETY: prctl(2) PR_CAP_AMBIENT_CLEAR_ALL takes no pointers. EINVAL on kernels before
    // 4.3 (no ambient set) is fine: there is nothing to clear.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Ok(before)
}

/// Makes capability `cap` survive the next `execve` of this thread as an ambient capability,
/// if the thread holds it in its permitted set: how an unprivileged natlens with file
/// capabilities lends CAP_NET_ADMIN to `nft`. Only raw syscalls, so it may run between fork and
/// exec.
pub fn pass_on_to_exec(cap: u32) -> io::Result<()> {
    let sets = current()?;
    if sets.permitted & (1u64 << cap) == 0 {
        return Ok(());
    }
    // Adding a permitted capability to the inheritable set needs no privilege.
    set(CapSets {
        inheritable: sets.inheritable | (1u64 << cap),
        ..sets
    })?;
    // SAFETY: prctl(2) PR_CAP_AMBIENT_RAISE takes a capability number, no pointers.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE,
            libc::c_ulong::from(cap),
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops every capability of the calling thread; returns the sets before.
pub fn drop_all() -> io::Result<CapSets> {
    keep_only(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_on_a_thread_leaves_it_without_capabilities() {
        std::thread::spawn(|| {
            let before = drop_all().unwrap();
            let after = current().unwrap();
            assert_eq!(after, CapSets::default(), "before: {before:?}");
            assert!(!after.has(CAP_NET_RAW));
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn keep_only_never_adds() {
        std::thread::spawn(|| {
            let before = current().unwrap();
            keep_only(1 << CAP_NET_ADMIN).unwrap();
            let after = current().unwrap();
            assert_eq!(after.effective, before.effective & (1 << CAP_NET_ADMIN));
            assert_eq!(after.inheritable, 0);
        })
        .join()
        .unwrap();
    }
}
