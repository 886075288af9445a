//! `modelvet detonate` on real hostile and benign pickle-family files, loaded by the real
//! /usr/bin/python3 inside the sandbox: every payload's attempt is in the record, nothing it
//! tries to write reaches the host, benign model files pass with no finding at all.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

fn modelvet() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_modelvet"))
}

fn python() -> &'static str {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: detonate's tests need a real Python 3 (CI installs python3)"
    );
    PYTHON
}

fn corpus(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/scan")
        .join(kind)
        .join(name)
}

/// A fresh directory under target/tmp (not /tmp: the host path a payload aims at must be one
/// the test can check).
fn workdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("detonate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

fn detonate(file: &Path, opts: &[&str]) -> Run {
    let out = Command::new(modelvet())
        .args(["detonate", "--format", "json", "--python", python()])
        .args(opts)
        .arg(file)
        .output()
        .expect("run modelvet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{}: report is not JSON ({e}): {stdout}\nstderr: {stderr}",
            file.display()
        )
    });
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

fn rules(r: &Run) -> Vec<(String, String)> {
    r.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has(r: &Run, rule: &str) -> bool {
    rules(r).iter().any(|(x, _)| x == rule)
}

fn events<'a>(r: &'a Run, kind: &str) -> Vec<&'a Value> {
    r.report["sandbox"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Exec events whose argv carries `needle` (the payload's own command line).
fn exec_with(r: &Run, needle: &str) -> bool {
    events(r, "exec")
        .iter()
        .any(|e| e["detail"]["argv"].to_string().contains(needle))
}

fn assert_fail(r: &Run, what: &str) {
    assert_eq!(r.report["schema"], "modelvet.detonate/1");
    assert_eq!(r.report["verdict"], "fail", "{what}: {:#}", r.report);
    assert_eq!(r.code, 1, "{what}: exit code; stderr {}", r.stderr);
}

// ---- pickles built byte by byte -------------------------------------------------------------

fn unicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}

/// Protocol 2: `module.name(arg)`.
fn call1(module: &str, name: &str, arg: &str) -> Vec<u8> {
    let mut v = b"\x80\x02c".to_vec();
    v.extend(format!("{module}\n{name}\n").as_bytes());
    v.extend(unicode(arg));
    v.extend(b"\x85R.");
    v
}

/// Protocol 2: `subprocess.Popen(['/bin/sh', '-c', cmd])`.
fn popen(cmd: &str) -> Vec<u8> {
    let mut v = b"\x80\x02csubprocess\nPopen\n](".to_vec();
    for a in ["/bin/sh", "-c", cmd] {
        v.extend(unicode(a));
    }
    v.extend(b"e\x85R.");
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A stored (uncompressed) zip, laid out as torch writes its checkpoints.
fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let off = out.len() as u32;
        let crc = crc32(data);
        let mut h = b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
        h.extend(crc.to_le_bytes());
        h.extend((data.len() as u32).to_le_bytes());
        h.extend((data.len() as u32).to_le_bytes());
        h.extend((name.len() as u16).to_le_bytes());
        h.extend(0u16.to_le_bytes());
        out.extend(&h);
        out.extend(name.as_bytes());
        out.extend(*data);
        let mut c = b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
        c.extend(crc.to_le_bytes());
        c.extend((data.len() as u32).to_le_bytes());
        c.extend((data.len() as u32).to_le_bytes());
        c.extend((name.len() as u16).to_le_bytes());
        c.extend([0u8; 12]);
        c.extend(off.to_le_bytes());
        c.extend(name.as_bytes());
        central.extend(c);
    }
    let cd_off = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_off.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A ustar archive (torch's legacy tar checkpoints).
fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend(h);
        out.extend(*data);
        out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    out.extend([0u8; 1024]);
    out
}

/// An .npy of object dtype: header, then the pickle numpy unpickles.
fn npy_object(payload: &[u8]) -> Vec<u8> {
    let mut header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(payload);
    out
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

// ---- hostile --------------------------------------------------------------------------------

#[test]
fn os_system_payload_is_recorded_and_contained() {
    let d = workdir("system");
    let target = d.join("pwned-by-system");
    let f = write(
        &d,
        "system.pkl",
        &call1("os", "system", &format!("touch {}", target.display())),
    );
    let r = detonate(&f, &[]);
    assert_fail(&r, "os.system");
    assert!(
        exec_with(&r, "pwned-by-system"),
        "exec of the payload recorded"
    );
    assert!(rules(&r).contains(&("sandbox.exec".into(), "critical".into())));
    assert!(has(&r, "detonate.python-exec"));
    assert!(!target.exists(), "the payload's file reached the host");
    assert_eq!(r.report["target"]["format"], "pickle");
    assert_eq!(
        r.report["target"]["bytes"],
        std::fs::metadata(&f).unwrap().len()
    );
    assert_eq!(r.report["load"]["globals"][0]["name"], "os.system");
}

#[test]
fn with_allow_exec_the_command_runs_inside_and_its_write_stays_in_the_scratch() {
    let d = workdir("allow-exec");
    let scratch = format!("/tmp/modelvet-detonate-{}-allow-exec", std::process::id());
    let f = write(
        &d,
        "touch.pkl",
        &call1("os", "system", &format!("touch {scratch}")),
    );
    let r = detonate(&f, &["--allow-exec"]);
    assert_fail(&r, "allow-exec");
    // The shell ran and so did touch: both execs are recorded, and the write they made.
    assert!(exec_with(&r, "/usr/bin/touch") || exec_with(&r, "\"touch\""));
    let wrote = r.report["findings"].as_array().unwrap().iter().any(|f| {
        f["rule"] == "detonate.file-write" && f["message"].as_str().unwrap().contains(&scratch)
    });
    assert!(wrote, "{:#}", r.report["findings"]);
    assert!(
        !Path::new(&scratch).exists(),
        "the write reached the host's /tmp"
    );
}

#[test]
fn subprocess_popen_payload_is_recorded() {
    let d = workdir("popen");
    let target = d.join("pwned-by-popen");
    let f = write(
        &d,
        "popen.pkl",
        &popen(&format!("echo x > {}", target.display())),
    );
    let r = detonate(&f, &[]);
    assert_fail(&r, "subprocess.Popen");
    assert!(exec_with(&r, "pwned-by-popen"));
    assert!(!target.exists());
}

#[test]
fn exec_of_code_that_connects_to_localhost_is_recorded_and_goes_nowhere() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let d = workdir("socket");
    let code = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'stolen')\nexcept OSError:\n    pass\n"
    );
    let f = write(&d, "exec-socket.pkl", &call1("builtins", "exec", &code));
    let r = detonate(&f, &[]);
    assert_fail(&r, "exec + socket");
    let net = events(&r, "network");
    assert!(
        net.iter().any(|e| e["syscall"] == "connect"
            && e["detail"]["address"] == "127.0.0.1"
            && e["detail"]["port"] == port),
        "connect to 127.0.0.1:{port} recorded: {net:?}"
    );
    assert!(has(&r, "sandbox.network"));
    assert!(
        has(&r, "detonate.python-code"),
        "exec of a string seen in-process"
    );
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the payload reached the host's loopback"
    );
}

#[test]
fn eval_that_writes_files_is_recorded_and_nothing_reaches_the_host() {
    let d = workdir("write");
    let outside = d.join("pwned-by-eval");
    let scratch = format!("/tmp/modelvet-detonate-{}-eval", std::process::id());
    // The scratch write succeeds inside; the one outside fails there (and stops the list).
    let code = format!(
        "[open(p, 'w').write('x') for p in ({scratch:?}, {:?})]",
        outside.display().to_string()
    );
    let f = write(&d, "eval-write.pkl", &call1("builtins", "eval", &code));
    let r = detonate(&f, &[]);
    assert_fail(&r, "eval + write");
    let writes: Vec<String> = events(&r, "file")
        .iter()
        .filter(|e| e["detail"]["write"] == true)
        .map(|e| e["detail"]["path"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        writes.iter().any(|p| p.ends_with("pwned-by-eval")),
        "write outside recorded: {writes:?}"
    );
    assert!(has(&r, "sandbox.file-write") || has(&r, "detonate.file-write"));
    assert!(has(&r, "detonate.python-file"));
    assert!(!outside.exists(), "the payload's file reached the host");
    assert!(
        !Path::new(&scratch).exists(),
        "the scratch write reached the host's /tmp"
    );
}

#[test]
fn torch_zip_with_a_malicious_data_pkl_runs_it_without_torch() {
    let d = workdir("torchzip");
    let pkl = call1("posix", "system", "id # torch-zip-payload");
    let f = write(
        &d,
        "model.pt",
        &zip(&[
            ("archive/data.pkl", &pkl),
            ("archive/byteorder", b"little"),
            ("archive/data/0", &[0u8; 16]),
            ("archive/version", b"3\n"),
        ]),
    );
    let r = detonate(&f, &[]);
    assert_fail(&r, "torch zip");
    assert!(exec_with(&r, "torch-zip-payload"));
    assert_eq!(r.report["target"]["format"], "pytorch-zip");
    assert_eq!(r.report["load"]["loader"], "torch-zip");
}

#[test]
fn legacy_torch_tar_runs_its_pickle_member() {
    let d = workdir("tar");
    let f = write(
        &d,
        "legacy.tar",
        &tar(&[
            ("storages", b"\x80\x02K\x00."),
            ("tensors", b"\x80\x02K\x00."),
            ("pickle", &call1("os", "system", "id # legacy-tar-payload")),
        ]),
    );
    let r = detonate(&f, &[]);
    assert_fail(&r, "legacy tar");
    assert!(exec_with(&r, "legacy-tar-payload"));
    assert_eq!(r.report["load"]["loader"], "torch-tar");
}

#[test]
fn object_npy_is_unpickled_as_numpy_does_even_without_numpy() {
    let d = workdir("npy");
    let f = write(
        &d,
        "obj.npy",
        &npy_object(&call1("os", "system", "id # npy-payload")),
    );
    let r = detonate(&f, &[]);
    assert_fail(&r, "object npy");
    assert!(exec_with(&r, "npy-payload"));
    assert_eq!(r.report["target"]["format"], "numpy");
}

#[test]
fn hostile_corpus_pickles_fail_with_their_exec_recorded() {
    let stamp = || {
        std::fs::metadata("/tmp/modelvet-pwned")
            .ok()
            .map(|m| m.modified().ok())
    };
    let before = stamp();
    // Payloads of the shared corpus: `touch /tmp/modelvet-pwned` by every route it knows.
    for name in [
        "pkl-p0-os-system.pkl",
        "pkl-p5-subprocess-popen.pkl",
        "pkl-builtins-eval.pkl",
        "pkl-legacy-torch-main.pt",
        "pkl-second-stream.pkl",
        "pkl-payload-then-garbage.pkl",
        "zip-torch-data-txt.pt",
        "zip-torch-crc-mismatch.pt",
        "zip-torch-flag-bits.pt",
        "tar-torch-legacy-pickle.tar",
        "npy-structured-object-field.npy",
        "joblib-object-array-nested.joblib",
        "joblib-zlib-compressed.joblib",
        "zip-npz-object-array.npz",
    ] {
        let r = detonate(&corpus("hostile", name), &[]);
        assert_fail(&r, name);
        assert!(
            !events(&r, "exec").is_empty(),
            "{name}: no exec recorded: {:#}",
            r.report["findings"]
        );
    }
    // The corpus payloads aim at the host's /tmp: the sandbox's scratch took them, if anything.
    // (Compared with before, so a file left by something else does not fail this test.)
    assert_eq!(
        stamp(),
        before,
        "a payload touched the host's /tmp/modelvet-pwned"
    );
}

#[test]
fn a_payload_before_garbage_runs_and_the_error_is_reported() {
    let r = detonate(&corpus("hostile", "pkl-payload-then-garbage.pkl"), &[]);
    assert_fail(&r, "payload then garbage");
    let err = r.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "detonate.load-error")
        .expect("load-error finding");
    assert_eq!(err["severity"], "low");
    assert!(err["message"].as_str().unwrap().contains("Error"));
}

#[test]
fn a_payload_that_ends_the_interpreter_leaves_no_summary_and_is_reported() {
    let d = workdir("exit");
    // os._exit(7): the harness never gets to write its summary.
    let f = write(&d, "exit.pkl", b"\x80\x02cos\n_exit\nK\x07\x85R.");
    let r = detonate(&f, &[]);
    assert_eq!(r.report["sandbox"]["exit"]["code"], 7);
    assert!(r.report["load"].is_null());
    assert!(
        rules(&r).contains(&("detonate.no-summary".into(), "medium".into())),
        "{:#}",
        r.report["findings"]
    );
    assert_eq!(r.report["verdict"], "warn");
    assert_eq!(r.code, 0, "medium is below the default --fail-on high");
}

#[test]
fn a_payload_that_closes_the_summary_pipe_does_not_hide_the_load() {
    let d = workdir("close3");
    // os.close(3), then os.system: the harness falls back to stdout for its summary.
    let mut p = b"\x80\x02cos\nclose\nK\x03\x85R0".to_vec();
    p.extend(&call1("os", "system", "id # after-close")[2..]);
    let f = write(&d, "close3.pkl", &p);
    let r = detonate(&f, &[]);
    assert_fail(&r, "close(3)");
    assert!(exec_with(&r, "after-close"));
    assert_eq!(r.report["load"]["opened"], true, "{:#}", r.report);
}

#[test]
fn a_payload_that_hangs_is_killed_at_the_timeout() {
    let d = workdir("sleep");
    let f = write(&d, "sleep.pkl", b"\x80\x02ctime\nsleep\nKx\x85R."); // time.sleep(120)
    let started = std::time::Instant::now();
    let r = detonate(&f, &["--timeout", "2"]);
    assert!(started.elapsed().as_secs() < 20);
    assert_eq!(r.report["sandbox"]["exit"]["status"], "timeout");
    assert!(has(&r, "resource.timeout"));
}

// ---- benign ---------------------------------------------------------------------------------

#[test]
fn benign_model_files_pass_with_no_finding() {
    for name in [
        "zip-benign-torch-state-dict.pt",
        "zip-benign-torch-params-bf16.pt",
        "pkl-benign-numpy-p2.pkl",
        "pkl-benign-ordereddict-p4.pkl",
        "pkl-benign-p0-floats-set.pkl",
        "pkl-benign-legacy-torch.pt",
        "tar-benign-torch-legacy.tar",
        "joblib-benign-estimator.joblib",
        "npy-benign-float32.npy",
        "zip-benign-npz.npz",
    ] {
        let r = detonate(&corpus("benign", name), &[]);
        assert_eq!(r.report["verdict"], "pass", "{name}: {:#}", r.report);
        assert_eq!(r.code, 0, "{name}");
        // Python's own start-up (the stdlib under /usr/lib/python3*) gives no finding at all.
        assert!(rules(&r).is_empty(), "{name}: {:#}", r.report["findings"]);
        assert!(events(&r, "exec").is_empty(), "{name}: an exec");
        let streams = r.report["load"]["streams"].as_array().unwrap();
        assert!(
            streams.iter().all(|s| s["status"] == "loaded"),
            "{name}: {streams:?}"
        );
    }
}

#[test]
fn a_file_under_tmp_is_loaded() {
    // The sandbox's scratch is /tmp: a target under the host's /tmp must still be what loads.
    let p = PathBuf::from(format!("/tmp/modelvet-detonate-{}.pkl", std::process::id()));
    std::fs::write(&p, call1("os", "system", "id # under-tmp")).unwrap();
    let r = detonate(&p, &[]);
    let _ = std::fs::remove_file(&p);
    assert_fail(&r, "file under /tmp");
    assert!(exec_with(&r, "under-tmp"));
}

// ---- errors and views -----------------------------------------------------------------------

#[test]
fn missing_python_is_exit_3_with_a_hint() {
    let out = Command::new(modelvet())
        .args(["detonate", "--python", "/nonexistent/python3"])
        .arg(corpus("benign", "pkl-benign-ordereddict-p4.pkl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Python at /nonexistent/python3; pass --python PATH"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_exit_2_in_one_line() {
    let out = Command::new(modelvet())
        .args(["detonate", "/nonexistent/model.pt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/model.pt"));
}

#[test]
fn a_file_that_is_no_pickle_is_exit_2() {
    let out = Command::new(modelvet())
        .args(["detonate"])
        .arg(corpus("benign", "st-mlp-f32-bf16-i64.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("modelvet scan"));
}

#[test]
fn text_and_sarif_views() {
    let f = corpus("hostile", "pkl-p0-os-system.pkl");
    let text = Command::new(modelvet())
        .args(["detonate", "--python", python()])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(1));
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.contains("verdict: fail"), "{t}");
    assert!(t.contains("CRITICAL sandbox.exec"), "{t}");
    assert!(t.contains("os.system (real)"), "{t}");

    let sarif = Command::new(modelvet())
        .args(["detonate", "--format", "sarif", "--python", python()])
        .arg(&f)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&sarif.stdout).expect("SARIF is JSON");
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "sandbox.exec"
        && r["properties"]["security-severity"] == "9.5"));
    assert_eq!(v["runs"][0]["properties"]["schema"], "modelvet.detonate/1");
}

/// Regression: the harness runs as the sandbox's unused uid; a pickle readable only by its owner
/// (0600) could not be opened. The runner now hands the harness an open descriptor.
#[test]
fn an_owner_only_pickle_is_still_detonated() {
    use std::os::unix::fs::PermissionsExt;
    let src = std::fs::read_dir(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scan/hostile"),
    )
    .unwrap()
    .filter_map(|e| e.ok().map(|e| e.path()))
    .find(|p| p.file_name().is_some_and(|n| n == "pkl-builtins-eval.pkl"))
    .expect("corpus file");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("owner-only.pkl");
    std::fs::copy(&src, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelvet"))
        .args(["detonate", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a report, not a refusal");
    assert_eq!(report["verdict"], "fail", "{report:#}");
    assert_eq!(out.status.code(), Some(1));
}

/// An interpreter that cannot be executed loads nothing: exit 2 and one line, not a report whose
/// only finding is a missing summary.
#[test]
fn an_interpreter_that_cannot_be_executed_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workdir("not-python");
    let fake = dir.join("python3");
    std::fs::write(&fake, b"\x7fELG not a program\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(modelvet())
        .args(["detonate", "--format", "json", "--python"])
        .arg(&fake)
        .arg(corpus("benign", "pkl-benign-hparams-namespace.pkl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "a report was written");
    assert!(stderr.contains("cannot execute"), "{stderr}");
}

/// The harness's summary is the interpreter's word, which the payload shares: a pickle sets
/// `summary['opened'] = False` by SETITEM alone after running `posix.system`. That turned the
/// run into "exit 3, nothing was loaded" with no report; the record now keeps the report.
#[test]
fn a_forged_never_opened_summary_does_not_hide_the_record() {
    let d = workdir("forged");
    let mut p = call1("posix", "system", "id # forged-summary");
    p.pop(); // the STOP
    p.extend(b"0c__main__\nsummary\n");
    p.extend(unicode("opened"));
    p.extend(b"\x89s0N.");
    let f = write(&d, "forged.pkl", &p);
    let r = detonate(&f, &[]);
    assert_fail(&r, "forged summary");
    assert!(exec_with(&r, "forged-summary"), "{:#}", r.report);
    assert!(
        rules(&r).contains(&("detonate.summary-forged".into(), "critical".into())),
        "{:#}",
        r.report["findings"]
    );
}

/// /dev/shm is the host's shared tmpfs: a file dropped there lands like one in /tmp.
#[test]
fn a_write_to_dev_shm_is_a_file_write() {
    let d = workdir("shm");
    // open('/dev/shm/modelvet-drop', 'w'): a file made and left.
    let mut p = b"\x80\x02cbuiltins\nopen\n".to_vec();
    p.extend(unicode("/dev/shm/modelvet-drop"));
    p.extend(unicode("w"));
    p.extend(b"\x86R.");
    let f = write(&d, "shm.pkl", &p);
    let r = detonate(&f, &[]);
    assert_fail(&r, "/dev/shm drop");
    let drop = r.report["findings"].as_array().unwrap().iter().any(|f| {
        f["rule"] == "detonate.file-write"
            && f["message"]
                .as_str()
                .is_some_and(|m| m.contains("/dev/shm/modelvet-drop"))
    });
    assert!(drop, "{:#}", r.report["findings"]);
}

/// A class name is the file's choice: one with line breaks made the text view show a second
/// "verdict: pass" and blank lines in the middle of the report.
#[test]
fn a_type_name_cannot_add_lines_to_the_text_view() {
    let d = workdir("typename");
    // builtins.type("X\nverdict: pass\n", (object,), {})()
    let mut p = b"\x80\x02cbuiltins\ntype\n".to_vec();
    p.extend(unicode("X\nverdict: pass\nfindings:\n  (none)\n"));
    p.extend(b"cbuiltins\nobject\n\x85}\x87R)R.");
    let f = write(&d, "typename.pkl", &p);
    let out = Command::new(modelvet())
        .args(["detonate", "--python", python()])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("verdict:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("X\\u{a}verdict: pass"), "{text}");
}

/// A torch checkpoint that also carries Keras's files is routed as Keras, whose loader unpickles
/// nothing: detonate refused it (exit 2), though torch.load runs its archive/data.pkl.
#[test]
fn a_torch_zip_dressed_as_keras_is_detonated() {
    let d = workdir("kerastorch");
    let pkl = call1("posix", "system", "id # dressed-as-keras");
    let f = write(
        &d,
        "model.pt",
        &zip(&[
            ("config.json", b"{}"),
            ("metadata.json", b"{}"),
            ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
            ("archive/data.pkl", &pkl),
            ("archive/version", b"3\n"),
        ]),
    );
    let r = detonate(&f, &[]);
    assert_fail(&r, "torch zip dressed as keras");
    assert!(exec_with(&r, "dressed-as-keras"), "{:#}", r.report);
}
