//! Deleting a mapping on every exit path: when the guard drops, and when SIGINT/SIGTERM end a
//! command that exits from its signal handler (`io::signal::exit_on_interrupt`), through a
//! process-wide list of live leases the interrupt hook walks. A PCP or NAT-PMP request is on
//! that list while it is in flight ([`InFlight`]), so an interrupt that lands after the gateway
//! granted the mapping but before its answer was read still deletes it (both delete by the
//! internal port, the nonce for PCP, without knowing the external port; deleting a mapping that
//! was never made is harmless).

use std::sync::{Mutex, Once};

use super::{delete_mapping, Lease};

/// Leases alive in this process, by guard id.
static LIVE: Mutex<Vec<(u64, Lease)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static HOOK: Once = Once::new();

fn live() -> std::sync::MutexGuard<'static, Vec<(u64, Lease)>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deletes its lease on drop and on SIGINT/SIGTERM, so nothing stays on the router.
#[derive(Debug)]
pub struct LeaseGuard {
    id: u64,
    lease: Lease,
    deleted: bool,
}

impl LeaseGuard {
    pub fn new(lease: Lease) -> Self {
        let id = register(lease.clone());
        LeaseGuard {
            id,
            lease,
            deleted: false,
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Deletes the mapping now; the error says why it may still be on the router.
    pub fn delete(mut self) -> anyhow::Result<()> {
        self.deleted = true;
        let result = delete_mapping(&self.lease);
        live().retain(|(id, _)| *id != self.id);
        result
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = delete_mapping(&self.lease);
        }
        live().retain(|(id, _)| *id != self.id);
    }
}

/// Puts a lease on the list the interrupt hook walks (installing the hook once).
fn register(lease: Lease) -> u64 {
    HOOK.call_once(|| crate::io::signal::before_interrupt_exit(delete_all_live));
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    live().push((id, lease));
    id
}

/// A mapping request in flight: on the interrupt hook's list from before the request is sent
/// until the answer is read (then the caller's [`LeaseGuard`] takes over). Dropping it only
/// takes it off the list: a request that failed left nothing to delete.
pub(super) struct InFlight {
    id: u64,
}

impl InFlight {
    /// `pending` names the request: its protocol, transport, internal address and handle (its
    /// external address is not known yet and is not needed to delete).
    pub(super) fn register(pending: Lease) -> Self {
        InFlight {
            id: register(pending),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        live().retain(|(id, _)| *id != self.id);
    }
}

/// The interrupt hook: deletes every live lease before the process exits.
fn delete_all_live() {
    let leases: Vec<Lease> = live().drain(..).map(|(_, lease)| lease).collect();
    for lease in &leases {
        let _ = delete_mapping(lease);
    }
}
