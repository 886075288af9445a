//! `modelvet jail [OPTS] -- CMD...`: run any command in the sandbox and report what it did.

use std::time::Duration;

use probes::finding::verdict;
use serde::Serialize;

use crate::cli::{Format, JailArgs, SandboxArgs};
use crate::error::{CliError, Result};
use crate::report::{self, sandbox::SandboxReport};

#[derive(Serialize)]
struct Target {
    command: Vec<String>,
}

#[derive(Serialize)]
struct JailReport<'a> {
    schema: &'static str,
    tool: report::Tool,
    verdict: &'static str,
    findings: &'a [probes::finding::Finding],
    target: Target,
    sandbox: SandboxReport<'a>,
}

/// Maps sandbox errors to exit codes: an unusable host or failed setup is 3 (nothing ran), a
/// missing program or unusable path is 2.
pub fn sandbox_error(e: sandbox::SandboxError) -> CliError {
    match e {
        sandbox::SandboxError::ProgramNotFound(_)
        | sandbox::SandboxError::Plan(_)
        | sandbox::SandboxError::Limit(_) => CliError::Input(e.to_string()),
        other => CliError::Sandbox(other.to_string()),
    }
}

/// The error for a program whose exec failed in the sandbox: nothing ran, so there is no report
/// of it, only this line (exit 2).
pub fn cannot_execute(program: &str, errno: i32) -> CliError {
    let why = match errno {
        libc::ENOENT => "its interpreter (the #! line, or the ELF loader) is not in the sandbox; \
                         if it is on the host, pass its folder with --ro"
            .to_string(),
        libc::ENOEXEC => "not a program this machine runs (another architecture, or a script \
                          without a #! line)"
            .to_string(),
        e => std::io::Error::from_raw_os_error(e).to_string(),
    };
    CliError::Input(format!("cannot execute {program}: {why}"))
}

/// The sandbox options common to jail, probe and detonate.
pub fn config(program: impl Into<std::ffi::OsString>, s: &SandboxArgs) -> sandbox::Config {
    let mut c = sandbox::Config::new(program);
    c.timeout = Duration::from_secs_f64(s.timeout);
    c.memory = s.memory;
    c.pids = s.pids;
    c.ro = s.ro.clone();
    c.rw = s.allow_write.clone();
    c.allow_exec = s.allow_exec;
    c
}

pub fn run(args: JailArgs) -> Result<u8> {
    report::check_output(args.common.output.as_deref())?;
    report::check_output_apart(args.common.output.as_deref(), &args.sandbox.allow_write)?;
    let mut cmd = args.command.clone();
    let program = cmd.remove(0);
    let mut cfg = config(program, &args.sandbox);
    cfg.args = cmd;
    // This thread only waits: it supervises (one thread fewer to start before the clone).
    cfg.supervisor_thread = false;
    let host = sandbox::HostSupport::detect();
    let running = sandbox::spawn_with(cfg, &host).map_err(sandbox_error)?;
    let outcome = running.wait();
    if let Some(errno) = outcome.exec_error {
        return Err(cannot_execute(&args.command[0].to_string_lossy(), errno));
    }
    let findings = report::sandbox::findings(
        &outcome,
        args.sandbox.timeout,
        args.sandbox.memory,
        args.sandbox.pids,
    );
    let rendered = match args.common.format {
        Format::Json | Format::Sarif => {
            let r = JailReport {
                schema: "modelvet.jail/1",
                tool: report::tool(),
                verdict: verdict(&findings),
                findings: &findings,
                target: Target {
                    command: args
                        .command
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect(),
                },
                sandbox: SandboxReport::new(&outcome, &host),
            };
            if args.common.format == Format::Sarif {
                let program = args
                    .command
                    .first()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (sha, len) = program_digest(&program);
                return finish(
                    &args,
                    &findings,
                    report::sarif_target::render(
                        "modelvet.jail/1",
                        &program,
                        "unknown",
                        &sha,
                        len,
                        &findings,
                    ),
                );
            }
            let mut s =
                serde_json::to_string_pretty(&r).map_err(|e| CliError::Input(e.to_string()))?;
            s.push('\n');
            s
        }
        Format::Text => {
            let mut s = String::new();
            let cmd: Vec<String> = args
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            s.push_str(&format!(
                "modelvet jail: {}\nverdict: {}\n",
                cmd.join(" "),
                verdict(&findings)
            ));
            report::sandbox::text(&mut s, &outcome);
            s.push_str("findings:\n");
            report::text::findings(&mut s, &findings);
            report::text::terminal_safe(s)
        }
    };
    finish(&args, &findings, rendered)
}

/// sha256 and size of the program file (looked up in PATH like the sandbox does).
fn program_digest(program: &str) -> (String, u64) {
    use sha2::{Digest, Sha256};
    let path = if program.contains('/') {
        Some(std::path::PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
    };
    match path.and_then(|p| std::fs::read(p).ok()) {
        Some(bytes) => (format!("{:x}", Sha256::digest(&bytes)), bytes.len() as u64),
        None => (format!("{:x}", Sha256::digest(program.as_bytes())), 0),
    }
}

fn finish(args: &JailArgs, findings: &[probes::finding::Finding], rendered: String) -> Result<u8> {
    report::emit(args.common.output.as_deref(), &rendered)?;
    Ok(report::exit_code(findings, args.common.fail_on.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_host_is_exit_3_and_bad_input_exit_2() {
        let host = sandbox::SandboxError::Unsupported {
            what: "Landlock is not available".into(),
            hint: "h".into(),
        };
        assert_eq!(sandbox_error(host).exit_code(), 3);
        let setup = sandbox::SandboxError::Setup {
            step: "x",
            error: std::io::Error::from_raw_os_error(1),
            detail: None,
        };
        assert_eq!(sandbox_error(setup).exit_code(), 3);
        assert_eq!(
            sandbox_error(sandbox::SandboxError::ProgramNotFound("p".into())).exit_code(),
            2
        );
    }
}
