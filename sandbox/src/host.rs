//! What the host offers, checked before anything runs: user namespaces, seccomp user
//! notification, Landlock and cgroup controllers. A missing layer fails closed with a hint.

use serde::Serialize;

use crate::cgroup::Support;
use crate::{SandboxError, sys};

#[derive(Debug, Clone, Serialize)]
pub struct HostSupport {
    pub user_namespaces: bool,
    pub seccomp_user_notif: bool,
    pub landlock_abi: Option<u32>,
    #[serde(skip)]
    pub cgroups: Support,
    pub cgroup_controllers: String,
}

fn read_num(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl HostSupport {
    pub fn detect() -> HostSupport {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let max_userns = read_num("/proc/sys/user/max_user_namespaces").unwrap_or(1);
        let unpriv = read_num("/proc/sys/kernel/unprivileged_userns_clone").unwrap_or(1);
        let cgroups = Support::detected();
        HostSupport {
            user_namespaces: max_userns > 0 && (root || unpriv == 1),
            seccomp_user_notif: sys::seccomp_notif_supported(),
            landlock_abi: sys::landlock_abi(),
            cgroup_controllers: cgroups.describe(),
            cgroups,
        }
    }

    /// Every layer the sandbox cannot do without. Cgroups are not among them: without a memory
    /// or pids controller the limits fall back to rlimits (and the report says so).
    pub fn require(&self) -> Result<(), SandboxError> {
        if !self.user_namespaces {
            return Err(SandboxError::Unsupported {
                what: "the host has no usable user namespaces".into(),
                hint: "enable them: sysctl -w user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1 on Debian kernels)".into(),
            });
        }
        if !self.seccomp_user_notif {
            return Err(SandboxError::Unsupported {
                what: "the kernel lacks seccomp user notification".into(),
                hint: "modelvet records syscalls through SECCOMP_RET_USER_NOTIF (Linux 5.0+, CONFIG_SECCOMP_FILTER)".into(),
            });
        }
        if self.landlock_abi.is_none() {
            return Err(SandboxError::Unsupported {
                what: "Landlock is not available".into(),
                hint: "Landlock needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= boot parameter".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> HostSupport {
        HostSupport {
            user_namespaces: true,
            seccomp_user_notif: true,
            landlock_abi: Some(4),
            cgroups: Support::default(),
            cgroup_controllers: String::new(),
        }
    }

    #[test]
    fn every_missing_layer_fails_closed_with_a_hint_naming_it() {
        assert!(
            full().require().is_ok(),
            "cgroups are optional (rlimits fall back)"
        );
        type Breaker = fn(&mut HostSupport);
        let cases: [(Breaker, &str); 3] = [
            (|h| h.user_namespaces = false, "user namespaces"),
            (
                |h| h.seccomp_user_notif = false,
                "seccomp user notification",
            ),
            (|h| h.landlock_abi = None, "Landlock"),
        ];
        for (break_it, name) in cases {
            let mut h = full();
            break_it(&mut h);
            match h.require() {
                Err(SandboxError::Unsupported { what, hint }) => {
                    assert!(what.contains(name), "{what}");
                    assert!(!hint.is_empty());
                }
                other => panic!("{name}: expected Unsupported, got {other:?}"),
            }
        }
    }

    #[test]
    fn this_host_offers_what_the_sandbox_needs() {
        // The CI host and every developer machine of this project: if this fails, the
        // integration tests would all exit 3.
        let h = HostSupport::detect();
        assert!(h.require().is_ok(), "{h:?}");
    }
}
