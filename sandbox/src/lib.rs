//! The modelvet sandbox: runs an untrusted program in fresh namespaces with a read-only root,
//! Landlock, rlimits, cgroups and a three-tier seccomp filter whose notifications a supervisor
//! decodes and records. It knows nothing about models.
