//! Command-line surface, as fixed by SPEC's "Commands" section. Users script against these names:
//! extend, never rename.

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use probes::finding::Severity;

#[derive(Parser, Debug)]
#[command(
    name = "modelvet",
    version,
    about = "Vet untrusted machine-learning models before anyone adopts them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line. `jail` and the model host are parsed against their own subcommand
    /// alone: building (and faulting in the code of) every subcommand's arguments cost ~0.3 ms
    /// of each jail spawn, SPEC's spawn target (interleaved medians of 100: 6.47 -> 6.14 ms).
    /// Whatever does not parse that way (help, versions, errors) goes through the whole parser,
    /// so what users see is the same.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some(cli) = Cli::parse_alone(&args) {
            return Ok(cli);
        }
        Cli::try_parse_from(args)
    }

    fn parse_alone(args: &[std::ffi::OsString]) -> Option<Cli> {
        let name = args.get(1)?.to_str()?;
        let sub = match name {
            "jail" => JailArgs::augment_args(clap::Command::new("jail")),
            "__host" => HostArgs::augment_args(clap::Command::new("__host")),
            _ => return None,
        };
        let matches = clap::Command::new("modelvet")
            .subcommand(sub)
            .try_get_matches_from(args)
            .ok()?;
        let (_, m) = matches.subcommand()?;
        let command = match name {
            "jail" => Command::Jail(JailArgs::from_arg_matches(m).ok()?),
            _ => Command::Host(HostArgs::from_arg_matches(m).ok()?),
        };
        Some(Cli { command })
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Static scan of files and directories (recursive), without running anything
    Scan(ScanArgs),
    /// Load MODEL (.onnx or .wasm) in the sandbox and run probes
    Probe(ProbeArgs),
    /// Load a pickle-family file with a real Python unpickler in the sandbox
    Detonate(DetonateArgs),
    /// Run any command in the sandbox and report what it did
    Jail(JailArgs),
    /// Internal: the model host, run by `probe` inside the sandbox
    #[command(name = "__host", hide = true)]
    Host(HostArgs),
    /// Internal: checks that a panic unwinds and is caught in this binary (its start-up and
    /// section layout are custom, see start.rs; the model hosts rely on catching tract's panics)
    #[command(name = "__unwind-check", hide = true)]
    UnwindCheck,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailOn(pub Severity);

fn parse_fail_on(s: &str) -> Result<FailOn, String> {
    Severity::parse(s)
        .map(FailOn)
        .ok_or_else(|| format!("'{s}' is not one of info, low, medium, high, critical"))
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Report format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to FILE (written whole or not at all) instead of stdout
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding is at or above this severity
    #[arg(long = "fail-on", value_name = "SEVERITY", default_value = "high", value_parser = parse_fail_on)]
    pub fail_on: FailOn,
    /// Seed for everything random (same seed, same numbers)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Parses sizes such as `256M`, `2G`, `4096`, `1.5G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_uppercase();
            let m: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("'{s}': unknown size unit (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 256M or 2G"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("'{s}': size must be positive"));
    }
    Ok((v * mult as f64) as u64)
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("'{s}': timeout must be positive"));
    }
    let max = sandbox::MAX_TIMEOUT.as_secs();
    if v > max as f64 {
        return Err(format!(
            "'{s}': timeout must be at most {max} seconds (a year)"
        ));
    }
    Ok(v)
}

fn parse_pids(s: &str) -> Result<u64, String> {
    let v: u64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of processes"))?;
    if !(1..=sandbox::MAX_PIDS).contains(&v) {
        return Err(format!(
            "'{s}': pids must be between 1 and {} (the kernel's limit)",
            sandbox::MAX_PIDS
        ));
    }
    Ok(v)
}

fn parse_memory(s: &str) -> Result<u64, String> {
    let v = parse_bytes(s)?;
    if v < sandbox::MIN_MEMORY {
        return Err(format!(
            "'{s}': memory must be at least {}M (the sandbox's own set-up before the program \
             starts needs a few MiB of it)",
            sandbox::MIN_MEMORY >> 20
        ));
    }
    Ok(v)
}

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Wall-clock limit in seconds
    #[arg(long, default_value = "30", value_parser = parse_timeout)]
    pub timeout: f64,
    /// Memory limit (cgroup when the host has one, else rlimits), e.g. 256M, 2G
    #[arg(long, default_value = "1G", value_parser = parse_memory)]
    pub memory: u64,
    /// Maximum number of processes and threads
    #[arg(long, default_value_t = 64, value_parser = parse_pids)]
    pub pids: u64,
    /// Extra read-only path visible inside the sandbox
    #[arg(long = "ro", value_name = "PATH")]
    pub ro: Vec<PathBuf>,
    /// Allow the program to exec other programs (the first exec of the target is always allowed)
    #[arg(long = "allow-exec")]
    pub allow_exec: bool,
    /// Host path the program may write to
    #[arg(long = "allow-write", value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Files and directories to scan
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Clean float32 reference data (.npy): validation set, STRIP calibration and blending pool
    #[arg(long, value_name = "X.npy")]
    pub inputs: Option<PathBuf>,
    /// Integer labels for --inputs (.npy)
    #[arg(long, value_name = "Y.npy")]
    pub labels: Option<PathBuf>,
    /// Inputs to judge with STRIP (.npy)
    #[arg(long, value_name = "Z.npy")]
    pub check: Option<PathBuf>,
    /// Probes to run, from validation,random,edge,strip,trigger (default: all that apply)
    #[arg(long, value_delimiter = ',')]
    pub probes: Vec<String>,
    /// STRIP copies per checked input
    #[arg(long = "strip-n", default_value_t = 100)]
    pub strip_n: usize,
    /// Target false-rejection rate for the STRIP threshold
    #[arg(long, default_value_t = 0.01)]
    pub frr: f64,
    /// STRIP blend
    #[arg(long, value_enum, default_value = "sum-clip")]
    pub blend: BlendArg,
    /// The model to probe (.onnx or .wasm/.wat)
    pub model: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlendArg {
    SumClip,
    Alpha,
}

#[derive(Args, Debug)]
pub struct DetonateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Python interpreter used to load the file
    #[arg(long, default_value = "/usr/bin/python3")]
    pub python: PathBuf,
    /// The pickle-family file to load
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct JailArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct HostArgs {
    /// Read the model from this already open descriptor (the supervisor opens it, so the model
    /// needs no read permission for the sandbox's unprivileged uid); MODEL then only names it
    #[arg(long)]
    pub fd: Option<i32>,
    /// The shared region for request tensors (a sealed memfd, read-only), on this descriptor
    #[arg(long)]
    pub shared_fd: Option<i32>,
    /// The model file, opened read-only
    pub model: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subcommand_parsed_alone_is_what_the_whole_parser_makes_of_it() {
        let os = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        for line in [
            &["modelvet", "jail", "--", "/bin/true"][..],
            &[
                "modelvet",
                "jail",
                "--format",
                "json",
                "--memory",
                "256M",
                "--pids",
                "8",
                "--timeout",
                "2.5",
                "--allow-exec",
                "--ro",
                "/a",
                "--allow-write",
                "/b",
                "-o",
                "r.json",
                "--fail-on",
                "critical",
                "--seed",
                "7",
                "--",
                "sh",
                "-c",
                "--x",
            ][..],
            &[
                "modelvet",
                "__host",
                "--fd",
                "3",
                "--shared-fd",
                "4",
                "model.onnx",
            ][..],
        ] {
            let alone = Cli::parse_alone(&os(line)).expect("parses alone");
            let whole = Cli::try_parse_from(os(line)).expect("parses whole");
            assert_eq!(format!("{alone:?}"), format!("{whole:?}"), "{line:?}");
        }
        // Help, bad values and other subcommands go to the whole parser (same messages).
        for line in [
            &["modelvet", "jail", "--help"][..],
            &["modelvet", "jail", "--memory", "lots", "--", "x"][..],
            &["modelvet", "jail"][..],
            &["modelvet", "scan", "x"][..],
            &["modelvet"][..],
        ] {
            assert!(Cli::parse_alone(&os(line)).is_none(), "{line:?}");
        }
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("256M"), Ok(256 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("-1M").is_err());
        assert!(parse_bytes("M").is_err());
        assert_eq!(parse_memory("16M"), Ok(16 << 20));
        assert!(parse_memory("64K").is_err());
        assert!(parse_memory("4096").is_err());
        assert!(parse_timeout("31536000").is_ok());
        assert!(parse_timeout("1e19").is_err());
        assert!(parse_timeout("1e30").is_err());
        assert_eq!(parse_pids("64"), Ok(64));
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("99999999999").is_err());
    }
}
