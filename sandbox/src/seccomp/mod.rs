//! The seccomp filter: syscalls of the allow tier pass in-kernel, every other syscall goes to the
//! supervisor (`SECCOMP_RET_USER_NOTIF`), those of any other architecture (i386's `int 0x80` on
//! x86_64) included: the supervisor refuses and records them. The child installs it with its own seccomp(2) call so that the kernel
//! hands back a listener fd.
//!
//! The program is a binary search over ranges of syscall numbers, not the linear chain
//! seccompiler emits (five instructions per listed syscall, 1,110 for our allow tier). Both say
//! the same thing, and a test proves it for every syscall number against seccompiler's filter
//! of the same policy (with its `Trace` returns read as "notify": seccompiler has no user-notify
//! action). The difference is cost: the kernel checks a new filter, converts it to eBPF, JITs it
//! and runs it once per syscall number to build its allow cache, so installing the chain took
//! ~0.4 ms of every sandbox's start; the tree is ~130 instructions, and a syscall that is not
//! cached walks ~8 of them instead of up to 2,000.

pub(crate) mod names;
pub mod policy;

use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("seccomp filter too long: {0} instructions")]
    TooLong(usize),
}

#[cfg(target_arch = "x86_64")]
pub(crate) const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub(crate) const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// The name of a foreign syscall ABI, for the record.
pub(crate) fn abi_name(arch: u32) -> String {
    match arch {
        0x4000_0003 => "i386".into(),
        0x4000_0028 => "arm".into(),
        a => format!("arch_{a:#x}"),
    }
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The kernel's limit on a classic BPF program.
const BPF_MAXINSNS: usize = 4096;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Compiles the filter for the allow tier `allow` (write(2) always passes: the child reports the
/// listener's number with it after installing the filter, before the supervisor answers anything).
pub fn build(allow: &[(i64, &str)]) -> Result<Vec<libc::sock_filter>, FilterError> {
    let mut nrs: Vec<u32> = allow
        .iter()
        .map(|&(nr, _)| nr)
        .chain(std::iter::once(libc::SYS_write))
        .filter_map(|nr| u32::try_from(nr).ok())
        .collect();
    nrs.sort_unstable();
    nrs.dedup();

    // Segments of the number line with one verdict each, as (first number, allowed); runs of
    // consecutive allowed numbers are one segment, and the gaps between them alternate with them.
    let mut segs: Vec<(u32, bool)> = vec![(0, false)];
    let mut k = 0;
    while k < nrs.len() {
        let first = nrs[k];
        while k + 1 < nrs.len() && nrs[k + 1] == nrs[k] + 1 {
            k += 1;
        }
        let last = nrs[k];
        if first == 0 {
            segs[0].1 = true;
        } else {
            segs.push((first, true));
        }
        if let Some(after) = last.checked_add(1) {
            segs.push((after, false));
        }
        k += 1;
    }

    let mut prog = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        // Another ABI's numbers name other syscalls: never allowed, always the supervisor's.
        stmt(RET_K, sys::SECCOMP_RET_USER_NOTIF),
        stmt(LD_W_ABS, DATA_NR),
    ];
    emit(&segs, &mut prog);
    if prog.len() > BPF_MAXINSNS {
        return Err(FilterError::TooLong(prog.len()));
    }
    Ok(prog)
}

/// Appends a search tree over `segs` (sorted, non-empty, each a start and a verdict) that ends in
/// the verdict of the segment holding the accumulator.
fn emit(segs: &[(u32, bool)], out: &mut Vec<libc::sock_filter>) {
    if let [(_, allowed)] = segs {
        let verdict = if *allowed {
            libc::SECCOMP_RET_ALLOW
        } else {
            sys::SECCOMP_RET_USER_NOTIF
        };
        out.push(stmt(RET_K, verdict));
        return;
    }
    let mid = segs.len() / 2;
    let mut left = Vec::new();
    emit(&segs[..mid], &mut left);
    match u8::try_from(left.len()) {
        // nr >= start of the right half: skip the left subtree.
        Ok(skip) => out.push(jump(JGE_K, segs[mid].0, skip, 0)),
        Err(_) => {
            out.push(jump(JGE_K, segs[mid].0, 0, 1));
            out.push(stmt(JA, left.len() as u32));
        }
    }
    out.extend(left);
    emit(&segs[mid..], out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

    #[cfg(target_arch = "x86_64")]
    const ARCH: TargetArch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    const ARCH: TargetArch = TargetArch::aarch64;

    /// seccompiler's filter of the same policy, `Trace(0)` standing for "notify".
    fn reference(allow: &[(i64, &str)]) -> Vec<libc::sock_filter> {
        let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = allow
            .iter()
            .map(|&(nr, _)| nr)
            .chain(std::iter::once(libc::SYS_write))
            .map(|nr| (nr, vec![]))
            .collect();
        let filter =
            SeccompFilter::new(rules, SeccompAction::Trace(0), SeccompAction::Allow, ARCH).unwrap();
        let prog: BpfProgram = filter.try_into().unwrap();
        prog.into_iter()
            .map(|i| {
                let k = if i.code == RET_K
                    && i.k & sys::SECCOMP_RET_ACTION_FULL == sys::SECCOMP_RET_TRACE
                {
                    sys::SECCOMP_RET_USER_NOTIF
                } else {
                    i.k
                };
                libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k,
                }
            })
            .collect()
    }

    /// Runs a classic BPF seccomp program on (nr, arch): the instructions both builders use.
    fn run(prog: &[libc::sock_filter], nr: u32, arch: u32) -> u32 {
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0);
        loop {
            steps += 1;
            assert!(steps < 10_000, "runaway program");
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    acc = match i.k {
                        DATA_NR => nr,
                        DATA_ARCH => arch,
                        k => panic!("load of offset {k}"),
                    }
                }
                JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                JGE_K => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET_K => return i.k,
                c => panic!("unexpected instruction {c:#x}"),
            }
        }
    }

    fn assert_same(allow: &[(i64, &str)]) {
        let ours = build(allow).unwrap();
        let theirs = reference(allow);
        let numbers = (0..2048u32)
            .chain((0..600).map(|n| 0x4000_0000 + n)) // x32 numbers
            .chain([u32::MAX, u32::MAX - 1, 1 << 31]);
        for nr in numbers {
            assert_eq!(
                run(&ours, nr, AUDIT_ARCH),
                run(&theirs, nr, AUDIT_ARCH),
                "syscall {nr}"
            );
            // seccompiler kills on another architecture; ours asks the supervisor.
            for arch in [0x4000_0003 /* i386 */, 0] {
                assert_eq!(
                    run(&ours, nr, arch),
                    sys::SECCOMP_RET_USER_NOTIF,
                    "syscall {nr} arch {arch:#x}"
                );
            }
        }
    }

    #[test]
    fn same_verdicts_as_seccompiler_for_every_syscall_number() {
        assert_same(policy::ALLOW);
        // Edge shapes: empty, number 0, runs, isolated numbers, and a tree whose left halves
        // outgrow an 8-bit jump.
        assert_same(&[]);
        assert_same(&[(0, "read"), (1, "write"), (2, "open"), (9, "x"), (11, "y")]);
        let sparse: Vec<(i64, &str)> = (0..900).step_by(3).map(|n| (n, "s")).collect();
        assert_same(&sparse);
    }

    #[test]
    fn tree_is_short_and_shallow() {
        let prog = build(policy::ALLOW).unwrap();
        let chain = reference(policy::ALLOW);
        assert!(
            prog.len() * 4 < chain.len(),
            "{} vs {}",
            prog.len(),
            chain.len()
        );
        let rets: Vec<u32> = prog
            .iter()
            .filter(|i| i.code == RET_K)
            .map(|i| i.k)
            .collect();
        assert!(rets.contains(&sys::SECCOMP_RET_USER_NOTIF));
        assert!(rets.contains(&libc::SECCOMP_RET_ALLOW));
        assert!(
            rets.iter()
                .all(|k| k & sys::SECCOMP_RET_ACTION_FULL != sys::SECCOMP_RET_TRACE)
        );
    }
}
