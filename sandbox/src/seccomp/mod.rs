//! The seccomp filter: built with seccompiler from the policy tables, with its `Trace` returns
//! rewritten to `SECCOMP_RET_USER_NOTIF` (seccompiler has no user-notify action), installed by the
//! child with our own seccomp(2) call so that the kernel hands back a listener fd.

pub(crate) mod names;
pub mod policy;

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("seccomp filter too long: {0} instructions")]
    TooLong(usize),
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// Compiles the filter: syscalls of `allow` pass in-kernel, every other syscall of the native
/// architecture is sent to the supervisor, any other architecture kills the process.
pub fn build(allow: &[(i64, &str)]) -> Result<Vec<libc::sock_filter>, FilterError> {
    // write(2) always passes: the child reports the listener's number with it after installing
    // the filter, before the supervisor can answer anything.
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = allow
        .iter()
        .map(|&(nr, _)| nr)
        .chain(std::iter::once(libc::SYS_write))
        .map(|nr| (nr, vec![]))
        .collect();
    // Trace(0) marks "notify"; it is rewritten below.
    let filter = SeccompFilter::new(rules, SeccompAction::Trace(0), SeccompAction::Allow, ARCH)?;
    let prog: BpfProgram = filter.try_into()?;
    if prog.len() > usize::from(u16::MAX) {
        return Err(FilterError::TooLong(prog.len()));
    }
    Ok(prog.into_iter().map(rewrite).collect())
}

const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Turns `RET TRACE(x)` into `RET USER_NOTIF`; every other instruction is copied unchanged.
fn rewrite(ins: seccompiler::sock_filter) -> libc::sock_filter {
    let k = if ins.code == BPF_RET_K
        && ins.k & sys::SECCOMP_RET_ACTION_FULL == sys::SECCOMP_RET_TRACE
    {
        sys::SECCOMP_RET_USER_NOTIF
    } else {
        ins.k
    };
    libc::sock_filter {
        code: ins.code,
        jt: ins.jt,
        jf: ins.jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_trace_action_survives_the_rewrite() {
        let prog = build(policy::ALLOW).unwrap();
        let rets: Vec<u32> = prog
            .iter()
            .filter(|i| i.code == BPF_RET_K)
            .map(|i| i.k)
            .collect();
        assert!(
            rets.iter()
                .all(|k| k & sys::SECCOMP_RET_ACTION_FULL != sys::SECCOMP_RET_TRACE)
        );
        assert!(rets.contains(&sys::SECCOMP_RET_USER_NOTIF));
        assert!(rets.contains(&libc::SECCOMP_RET_ALLOW));
    }
}
