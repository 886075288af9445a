//! The callable policy, default-deny: a global a pickle imports is judged against an allow-list
//! of what real model files use, then a deny-list that names the dangerous families with a
//! severity; anything on neither list is unknown, hence high. Policy is data: two tables.

use crate::finding::Severity;

/// Why a denied global is dangerous. Each class is its own stable rule id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyClass {
    /// Runs code or commands, or reaches any other callable (getattr, import machinery).
    Exec,
    /// Opens network connections or hands a URL to something that will.
    Network,
    /// Reads, writes or deletes files.
    Files,
}

impl DenyClass {
    pub fn rule(self) -> &'static str {
        match self {
            DenyClass::Exec => "pickle.unsafe-global",
            DenyClass::Network => "pickle.network-global",
            DenyClass::Files => "pickle.file-global",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgment {
    Allowed,
    Denied {
        class: DenyClass,
        severity: Severity,
        reason: &'static str,
    },
    Unknown,
}

impl Judgment {
    pub fn severity(self) -> Option<Severity> {
        match self {
            Judgment::Allowed => None,
            Judgment::Denied { severity, .. } => Some(severity),
            Judgment::Unknown => Some(Severity::High),
        }
    }

    pub fn rule(self) -> &'static str {
        match self {
            Judgment::Denied { class, .. } => class.rule(),
            _ => "pickle.unknown-global",
        }
    }
}

/// What real checkpoints import: `(module, names)`; `"*"` allows the whole module.
/// Every entry is a constructor or a rebuild helper that runs no code of the file's choosing.
const ALLOW: &[(&str, &[&str])] = &[
    (
        "collections",
        &["OrderedDict", "defaultdict", "deque", "Counter"],
    ),
    (
        "builtins",
        &[
            "set",
            "frozenset",
            "list",
            "dict",
            "tuple",
            "bytearray",
            "bytes",
            "complex",
            "slice",
            "range",
            "int",
            "float",
            "str",
            "bool",
            "object",
            "NoneType",
        ],
    ),
    (
        "copyreg",
        &["_reconstructor", "__newobj__", "__newobj_ex__"],
    ),
    ("_codecs", &["encode"]),
    ("codecs", &["encode"]),
    (
        "datetime",
        &["datetime", "date", "time", "timedelta", "timezone"],
    ),
    ("decimal", &["Decimal"]),
    ("fractions", &["Fraction"]),
    ("uuid", &["UUID"]),
    ("argparse", &["Namespace"]),
    ("types", &["SimpleNamespace"]),
    (
        "pathlib",
        &[
            "PosixPath",
            "WindowsPath",
            "PurePosixPath",
            "PureWindowsPath",
            "Path",
        ],
    ),
    (
        "torch._utils",
        &[
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_tensor_v3",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
            "_rebuild_qtensor",
            "_rebuild_sparse_tensor",
            "_rebuild_nested_tensor",
            "_rebuild_device_tensor_from_numpy",
            "_rebuild_meta_tensor_no_storage",
            "_rebuild_wrapper_subclass",
            "_rebuild_xla_tensor",
            "_rebuild_mtia_tensor",
        ],
    ),
    (
        "torch",
        &[
            "FloatStorage",
            "DoubleStorage",
            "HalfStorage",
            "BFloat16Storage",
            "LongStorage",
            "IntStorage",
            "ShortStorage",
            "CharStorage",
            "ByteStorage",
            "BoolStorage",
            "ComplexFloatStorage",
            "ComplexDoubleStorage",
            "QInt8Storage",
            "QUInt8Storage",
            "QInt32Storage",
            "QUInt4x2Storage",
            "QUInt2x4Storage",
            "UntypedStorage",
            "Size",
            "device",
            "dtype",
            "float32",
            "float",
            "float64",
            "double",
            "float16",
            "half",
            "bfloat16",
            "int64",
            "long",
            "int32",
            "int",
            "int16",
            "short",
            "int8",
            "uint8",
            "bool",
            "complex64",
            "complex128",
            "float8_e4m3fn",
            "float8_e5m2",
            "float8_e4m3fnuz",
            "float8_e5m2fnuz",
            "uint16",
            "uint32",
            "uint64",
            "complex32",
            "chalf",
            "cfloat",
            "cdouble",
            "qint8",
            "quint8",
            "qint32",
            "quint4x2",
            "quint2x4",
            "strided",
            "sparse_coo",
            "contiguous_format",
            "channels_last",
            "preserve_format",
            "per_tensor_affine",
            "per_channel_affine",
            "Tensor",
        ],
    ),
    (
        "torch.storage",
        &["UntypedStorage", "TypedStorage", "_StorageBase"],
    ),
    ("torch.nn.parameter", &["Parameter"]),
    ("torch.serialization", &["_get_layout"]),
    (
        "torch._tensor",
        &["_rebuild_from_type_v2", "_rebuild_from_type"],
    ),
    // TorchScript's debug pickles wrap lists with these identity builders.
    (
        "torch.jit._pickle",
        &[
            "build_intlist",
            "build_tensorlist",
            "build_doublelist",
            "build_boollist",
        ],
    ),
    // Protocol 5 pickles an array's bytes out of line and rebuilds it with _frombuffer.
    ("numpy.core.numeric", &["_frombuffer"]),
    ("numpy._core.numeric", &["_frombuffer"]),
    // Masked arrays rebuild through _mareconstruct (the subtype it is handed is a global of
    // its own, judged by itself).
    ("numpy.ma.core", &["_mareconstruct", "MaskedArray"]),
    ("numpy.ma", &["MaskedArray"]),
    ("numpy.core.multiarray", &["_reconstruct", "scalar"]),
    ("numpy._core.multiarray", &["_reconstruct", "scalar"]),
    (
        "numpy",
        &[
            "ndarray",
            "dtype",
            "core.multiarray._reconstruct",
            // Scalar types, pickled as values (an sklearn encoder's dtype=np.float64).
            "float64",
            "float32",
            "float16",
            "longdouble",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint64",
            "uint32",
            "uint16",
            "uint8",
            "bool_",
            "bool",
            "str_",
            "bytes_",
            "complex64",
            "complex128",
            "datetime64",
            "timedelta64",
        ],
    ),
    (
        "numpy.dtypes",
        &[
            "Float64DType",
            "Float32DType",
            "Float16DType",
            "Int64DType",
            "Int32DType",
            "Int16DType",
            "Int8DType",
            "UInt8DType",
            "BoolDType",
            "ObjectDType",
        ],
    ),
    // numpy's random generators pickle through these constructors; a callable they are handed
    // (the bit generator's type) is a global of its own, judged by itself.
    (
        "numpy.random._pickle",
        &[
            "__randomstate_ctor",
            "__generator_ctor",
            "__bit_generator_ctor",
        ],
    ),
    // Cython's unpickle helper checks a checksum and rebuilds the type it is handed (itself
    // a global, judged by itself).
    (
        "numpy.random.bit_generator",
        &["SeedSequence", "__pyx_unpickle_SeedSequence"],
    ),
    ("numpy.random._mt19937", &["MT19937"]),
    ("numpy.random._pcg64", &["PCG64", "PCG64DXSM"]),
    ("numpy.random._philox", &["Philox"]),
    ("numpy.random._sfc64", &["SFC64"]),
    ("numpy.random.mtrand", &["RandomState"]),
    ("numpy.random._generator", &["Generator"]),
    // Not the legacy `NDArrayWrapper`: it loads a second file by a path the pickle names
    // (absolute or with `..`), with allow_pickle.
    ("joblib.numpy_pickle", &["NumpyArrayWrapper"]),
    (
        "sklearn.externals.joblib.numpy_pickle",
        &["NumpyArrayWrapper"],
    ),
];

/// Deny-list: `(module, name or "*", class, severity, reason)`. A `"*"` entry covers the module
/// and its submodules. Sources: the callables named in the picklescan, modelscan and fickling
/// advisories (pip.main CVE-2025-1716, asyncio CVE-2025-10157, profile/trace/pdb/bdb/timeit/
/// doctest, idlelib, lib2to3, ensurepip, venv, pkgutil.resolve_name, operator getters, ...).
const DENY: &[(&str, &str, DenyClass, Severity, &str)] = {
    use DenyClass::{Exec, Files, Network};
    use Severity::{Critical, High};
    &[
        (
            "os",
            "*",
            Exec,
            Critical,
            "os runs commands and touches files",
        ),
        (
            "posix",
            "*",
            Exec,
            Critical,
            "posix is os under another name",
        ),
        ("nt", "*", Exec, Critical, "nt is os under another name"),
        ("subprocess", "*", Exec, Critical, "runs commands"),
        (
            "commands",
            "*",
            Exec,
            Critical,
            "Python 2 name of subprocess",
        ),
        ("popen2", "*", Exec, Critical, "runs commands"),
        (
            "_posixsubprocess",
            "*",
            Exec,
            Critical,
            "fork_exec runs commands",
        ),
        ("pty", "*", Exec, Critical, "spawn runs commands"),
        (
            "builtins",
            "eval",
            Exec,
            Critical,
            "evaluates Python source",
        ),
        ("builtins", "exec", Exec, Critical, "executes Python source"),
        (
            "builtins",
            "execfile",
            Exec,
            Critical,
            "executes a Python file",
        ),
        (
            "builtins",
            "compile",
            Exec,
            Critical,
            "compiles Python source",
        ),
        (
            "builtins",
            "__import__",
            Exec,
            Critical,
            "imports any module",
        ),
        (
            "builtins",
            "getattr",
            Exec,
            Critical,
            "reaches any attribute, hence any callable",
        ),
        (
            "builtins",
            "setattr",
            Exec,
            Critical,
            "rewrites attributes of live objects",
        ),
        (
            "builtins",
            "delattr",
            Exec,
            Critical,
            "removes attributes of live objects",
        ),
        (
            "builtins",
            "globals",
            Exec,
            Critical,
            "exposes the interpreter's globals",
        ),
        ("builtins", "vars", Exec, Critical, "exposes namespaces"),
        (
            "builtins",
            "breakpoint",
            Exec,
            Critical,
            "starts a debugger",
        ),
        ("builtins", "input", Exec, High, "reads the terminal"),
        ("builtins", "open", Files, High, "opens files"),
        ("builtins", "help", Exec, High, "pydoc pager runs a command"),
        ("builtins", "apply", Exec, Critical, "calls any callable"),
        ("runpy", "*", Exec, Critical, "runs modules and files"),
        (
            "timeit",
            "*",
            Exec,
            Critical,
            "timeit executes source strings",
        ),
        (
            "cProfile",
            "*",
            Exec,
            Critical,
            "run/runctx execute source strings",
        ),
        (
            "profile",
            "*",
            Exec,
            Critical,
            "run/runctx execute source strings",
        ),
        (
            "trace",
            "*",
            Exec,
            Critical,
            "Trace.run executes source strings",
        ),
        (
            "pdb",
            "*",
            Exec,
            Critical,
            "pdb.run executes source strings",
        ),
        (
            "bdb",
            "*",
            Exec,
            Critical,
            "Bdb.run executes source strings",
        ),
        (
            "code",
            "*",
            Exec,
            Critical,
            "InteractiveInterpreter runs source",
        ),
        ("codeop", "*", Exec, Critical, "compiles source"),
        (
            "doctest",
            "*",
            Exec,
            Critical,
            "debug_script executes source",
        ),
        (
            "pydoc",
            "*",
            Exec,
            Critical,
            "pydoc.locate resolves any name; pager runs commands",
        ),
        (
            "idlelib",
            "*",
            Exec,
            Critical,
            "runcode/runcommand execute source",
        ),
        (
            "lib2to3",
            "*",
            Exec,
            Critical,
            "pgen make_label evaluates strings",
        ),
        ("importlib", "*", Exec, Critical, "imports any module"),
        ("imp", "*", Exec, Critical, "imports any module"),
        (
            "pkgutil",
            "*",
            Exec,
            Critical,
            "resolve_name reaches any callable",
        ),
        (
            "zipimport",
            "*",
            Exec,
            Critical,
            "imports code from archives",
        ),
        ("marshal", "*", Exec, Critical, "loads code objects"),
        ("types", "CodeType", Exec, Critical, "builds code objects"),
        (
            "types",
            "FunctionType",
            Exec,
            Critical,
            "builds functions from code objects",
        ),
        ("types", "MethodType", Exec, Critical, "binds callables"),
        ("pickle", "*", Exec, Critical, "nested unpickling"),
        ("_pickle", "*", Exec, Critical, "nested unpickling"),
        ("cPickle", "*", Exec, Critical, "nested unpickling"),
        ("dill", "*", Exec, Critical, "nested unpickling of code"),
        (
            "cloudpickle",
            "*",
            Exec,
            Critical,
            "nested unpickling of code",
        ),
        ("shelve", "*", Exec, Critical, "nested unpickling"),
        ("jsonpickle", "*", Exec, Critical, "nested unpickling"),
        ("ctypes", "*", Exec, Critical, "calls native code"),
        ("_ctypes", "*", Exec, Critical, "calls native code"),
        ("cffi", "*", Exec, Critical, "calls native code"),
        ("multiprocessing", "*", Exec, Critical, "starts processes"),
        ("_multiprocessing", "*", Exec, Critical, "starts processes"),
        (
            "concurrent",
            "*",
            Exec,
            Critical,
            "starts workers that run callables",
        ),
        (
            "asyncio",
            "*",
            Exec,
            Critical,
            "subprocess transports run commands",
        ),
        (
            "threading",
            "*",
            Exec,
            Critical,
            "runs callables in threads",
        ),
        ("_thread", "*", Exec, Critical, "runs callables in threads"),
        ("signal", "*", Exec, Critical, "installs handlers"),
        (
            "sys",
            "*",
            Exec,
            Critical,
            "rewrites the interpreter (modules, hooks)",
        ),
        ("gc", "*", Exec, High, "reaches every live object"),
        ("inspect", "*", Exec, Critical, "reaches frames and globals"),
        (
            "operator",
            "attrgetter",
            Exec,
            Critical,
            "reaches any attribute",
        ),
        (
            "operator",
            "methodcaller",
            Exec,
            Critical,
            "calls any method",
        ),
        ("operator", "itemgetter", Exec, High, "indexes live objects"),
        ("operator", "getitem", Exec, High, "indexes live objects"),
        ("operator", "call", Exec, Critical, "calls any callable"),
        (
            "_operator",
            "*",
            Exec,
            Critical,
            "attrgetter/methodcaller reach any callable",
        ),
        (
            "functools",
            "partial",
            Exec,
            Critical,
            "wraps a callable to call it later",
        ),
        (
            "functools",
            "reduce",
            Exec,
            Critical,
            "calls a callable repeatedly",
        ),
        ("functools", "*", Exec, High, "higher-order helpers"),
        (
            "itertools",
            "*",
            Exec,
            High,
            "starmap and friends call callables",
        ),
        (
            "pip",
            "*",
            Exec,
            Critical,
            "pip.main installs and runs packages",
        ),
        ("ensurepip", "*", Exec, Critical, "_run_pip runs pip"),
        (
            "venv",
            "*",
            Exec,
            Critical,
            "creates environments and runs pip",
        ),
        ("setuptools", "*", Exec, Critical, "runs build scripts"),
        (
            "distutils",
            "*",
            Exec,
            Critical,
            "spawn runs commands; file_util writes files",
        ),
        ("numpy.f2py", "*", Exec, Critical, "evaluates strings"),
        (
            "numpy.testing",
            "*",
            Exec,
            Critical,
            "runstring executes source",
        ),
        ("numpy", "load", Exec, Critical, "nested unpickling"),
        ("numpy.lib.npyio", "*", Exec, Critical, "nested unpickling"),
        ("numpy", "loads", Exec, Critical, "nested unpickling"),
        (
            "numpy.core.numeric",
            "loads",
            Exec,
            Critical,
            "nested unpickling",
        ),
        (
            "numpy.ctypeslib",
            "*",
            Exec,
            Critical,
            "loads native libraries",
        ),
        ("torch", "load", Exec, Critical, "nested unpickling"),
        (
            "torch.serialization",
            "*",
            Exec,
            Critical,
            "nested unpickling",
        ),
        (
            "torch.storage",
            "_load_from_bytes",
            Exec,
            Critical,
            "nested unpickling",
        ),
        ("torch.hub", "*", Exec, Critical, "downloads and runs code"),
        (
            "torch.jit",
            "*",
            Exec,
            Critical,
            "compiles and runs TorchScript",
        ),
        (
            "torch._inductor",
            "*",
            Exec,
            Critical,
            "codecache compiles and loads code",
        ),
        (
            "torch.utils.bottleneck",
            "*",
            Exec,
            Critical,
            "runs profiled code",
        ),
        (
            "torch.utils.cpp_extension",
            "*",
            Exec,
            Critical,
            "compiles and loads native code",
        ),
        ("torch._dynamo", "*", Exec, Critical, "compiles code"),
        (
            "torch.fx",
            "*",
            Exec,
            Critical,
            "builds modules from generated source",
        ),
        (
            "torch.package",
            "*",
            Exec,
            Critical,
            "nested unpickling of packages",
        ),
        (
            "uuid",
            "_get_command_stdout",
            Exec,
            Critical,
            "runs commands",
        ),
        (
            "_osx_support",
            "*",
            Exec,
            Critical,
            "_read_output runs commands",
        ),
        (
            "_aix_support",
            "*",
            Exec,
            Critical,
            "_read_cmd_output runs commands",
        ),
        ("platform", "*", Exec, High, "_syscmd helpers run commands"),
        (
            "test",
            "*",
            Exec,
            Critical,
            "script_helper runs interpreters",
        ),
        (
            "webbrowser",
            "*",
            Exec,
            Critical,
            "opens URLs by running a browser",
        ),
        ("cgitb", "*", Exec, High, "hooks the interpreter"),
        ("site", "*", Exec, Critical, "executes .pth files"),
        ("builtins", "memoryview", Exec, High, "raw buffer access"),
        (
            "jinja2",
            "*",
            Exec,
            Critical,
            "templates reach Python objects",
        ),
        ("mako", "*", Exec, Critical, "templates execute Python"),
        (
            "yaml",
            "*",
            Exec,
            Critical,
            "unsafe loaders construct objects",
        ),
        ("socket", "*", Network, High, "opens sockets"),
        ("_socket", "*", Network, High, "opens sockets"),
        ("ssl", "*", Network, High, "opens TLS connections"),
        ("urllib", "*", Network, High, "fetches URLs"),
        ("urllib2", "*", Network, High, "fetches URLs"),
        ("urllib3", "*", Network, High, "fetches URLs"),
        ("http", "*", Network, High, "HTTP clients and servers"),
        ("httplib", "*", Network, High, "HTTP client"),
        ("requests", "*", Network, High, "fetches URLs"),
        ("aiohttp", "*", Network, High, "fetches URLs"),
        ("httpx", "*", Network, High, "fetches URLs"),
        ("smtplib", "*", Network, High, "sends mail"),
        ("ftplib", "*", Network, High, "FTP client"),
        (
            "imaplib",
            "*",
            Exec,
            Critical,
            "IMAP4_stream runs a command",
        ),
        ("poplib", "*", Network, High, "POP3 client"),
        ("telnetlib", "*", Network, High, "telnet client"),
        ("nntplib", "*", Network, High, "NNTP client"),
        ("xmlrpc", "*", Network, High, "RPC client"),
        ("xmlrpclib", "*", Network, High, "RPC client"),
        (
            "socketserver",
            "*",
            Network,
            High,
            "opens listening sockets",
        ),
        (
            "SocketServer",
            "*",
            Network,
            High,
            "opens listening sockets",
        ),
        ("paramiko", "*", Network, High, "SSH client"),
        (
            "shutil",
            "*",
            Files,
            High,
            "copies, moves and deletes files",
        ),
        ("_io", "FileIO", Files, High, "opens files"),
        (
            "joblib.numpy_pickle",
            "NDArrayWrapper",
            Files,
            High,
            "loads another .npy file by a path the pickle names, objects allowed",
        ),
        (
            "joblib.numpy_pickle_compat",
            "NDArrayWrapper",
            Files,
            High,
            "loads another .npy file by a path the pickle names, objects allowed",
        ),
        ("_io", "open", Files, High, "opens files"),
        ("io", "FileIO", Files, High, "opens files"),
        ("io", "open", Files, High, "opens files"),
        ("io", "open_code", Files, High, "opens files"),
        ("tempfile", "*", Files, High, "creates files"),
        ("glob", "*", Files, High, "lists files"),
        ("fileinput", "*", Files, High, "reads files"),
        ("linecache", "*", Files, High, "reads files"),
        (
            "logging",
            "*",
            Files,
            High,
            "handlers open files and sockets",
        ),
        ("zipfile", "*", Files, High, "reads and writes archives"),
        ("tarfile", "*", Files, High, "reads and writes archives"),
        ("sqlite3", "*", Files, High, "opens databases"),
        ("dbm", "*", Files, High, "opens databases"),
        ("mmap", "*", Files, High, "maps files"),
        (
            "pathlib",
            "*",
            Files,
            High,
            "path methods read, write and delete files",
        ),
    ]
};

/// Python 2 module names the unpickler maps to Python 3 ones (`_compat_pickle.IMPORT_MAPPING`,
/// applied for protocols below 3); judged under both names.
const PY2_MODULES: &[(&str, &str)] = &[
    ("__builtin__", "builtins"),
    ("exceptions", "builtins"),
    ("copy_reg", "copyreg"),
    ("cPickle", "pickle"),
    ("commands", "subprocess"),
    ("urllib2", "urllib.request"),
    ("httplib", "http.client"),
    ("SocketServer", "socketserver"),
    ("cStringIO", "io"),
    ("StringIO", "io"),
    ("thread", "_thread"),
    ("UserDict", "collections"),
    ("urlparse", "urllib.parse"),
    ("xmlrpclib", "xmlrpc.client"),
    ("BaseHTTPServer", "http.server"),
    ("SimpleHTTPServer", "http.server"),
    ("CGIHTTPServer", "http.server"),
    ("ConfigParser", "configparser"),
];

/// The module name the unpickler imports for `module` (Python 2 names mapped).
pub fn canonical_module(module: &str) -> &str {
    PY2_MODULES
        .iter()
        .find(|(py2, _)| *py2 == module)
        .map_or(module, |(_, py3)| py3)
}

fn allowed(module: &str, name: &str) -> bool {
    ALLOW
        .iter()
        .any(|(m, names)| *m == module && names.iter().any(|n| *n == "*" || *n == name))
}

fn module_covers(pattern: &str, module: &str) -> bool {
    module == pattern
        || (module.len() > pattern.len()
            && module.starts_with(pattern)
            && module.as_bytes()[pattern.len()] == b'.')
}

fn denied(module: &str, name: &str) -> Option<Judgment> {
    let mut worst: Option<Judgment> = None;
    for (m, n, class, severity, reason) in DENY {
        let hit = if *n == "*" {
            module_covers(m, module)
        } else {
            module == *m && name == *n
        };
        if hit {
            let j = Judgment::Denied {
                class: *class,
                severity: *severity,
                reason,
            };
            if worst.and_then(Judgment::severity) < Some(*severity) {
                worst = Some(j);
            }
        }
    }
    worst
}

/// Judges `module.name` as the unpickler resolves it. Dotted names (`pathlib` + `os.system`)
/// are attribute paths from the module, so every module/attribute split of the full path is
/// judged and the worst wins: `pathlib.os.system` is `os.system`.
pub fn judge(module: &str, name: &str) -> Judgment {
    let module = canonical_module(module);
    if !name.contains('.') && allowed(module, name) {
        return Judgment::Allowed;
    }
    let full = format!("{module}.{name}");
    let parts: Vec<&str> = full.split('.').collect();
    let mut worst: Option<Judgment> = None;
    // Every split point: module = parts[i..j], attribute = parts[j]. The module starts at the
    // real module or inside the attribute path, since an attribute may itself be a module
    // (`pathlib.os`).
    let module_parts = module.split('.').count();
    let starts = std::iter::once(0).chain(module_parts..parts.len());
    for start in starts {
        for split in start + 1..parts.len() {
            let m = parts[start..split].join(".");
            let m = canonical_module(&m).to_string();
            if let Some(j) = denied(&m, parts[split])
                && worst.and_then(Judgment::severity) < j.severity()
            {
                worst = Some(j);
            }
        }
    }
    if let Some(j) = worst {
        return j;
    }
    if name.contains('.') && allowed(module, name) {
        return Judgment::Allowed;
    }
    Judgment::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_globals_are_allowed() {
        assert_eq!(
            judge("torch._utils", "_rebuild_tensor_v2"),
            Judgment::Allowed
        );
        assert_eq!(judge("collections", "OrderedDict"), Judgment::Allowed);
        assert_eq!(judge("__builtin__", "set"), Judgment::Allowed);
        assert_eq!(
            judge("numpy.core.multiarray", "_reconstruct"),
            Judgment::Allowed
        );
        assert_eq!(judge("_codecs", "encode"), Judgment::Allowed);
    }

    #[test]
    fn dangerous_globals_are_denied_with_severity() {
        assert_eq!(judge("os", "system").severity(), Some(Severity::Critical));
        assert_eq!(
            judge("posix", "system").severity(),
            Some(Severity::Critical)
        );
        assert_eq!(
            judge("__builtin__", "eval").severity(),
            Some(Severity::Critical)
        );
        assert_eq!(
            judge("socket", "create_connection").rule(),
            "pickle.network-global"
        );
        assert_eq!(judge("shutil", "rmtree").rule(), "pickle.file-global");
        assert_eq!(
            judge("pip._internal", "main").severity(),
            Some(Severity::Critical)
        );
        assert_eq!(
            judge("commands", "getoutput").severity(),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn dotted_names_resolve_through_modules() {
        assert_eq!(
            judge("pathlib", "os.system").severity(),
            Some(Severity::Critical)
        );
        assert_eq!(
            judge("torch", "os.system").severity(),
            Some(Severity::Critical)
        );
        assert_eq!(
            judge("collections", "OrderedDict.__init__.__globals__").severity(),
            Some(Severity::High)
        );
    }

    #[test]
    fn anything_else_is_unknown_and_high() {
        assert_eq!(judge("mypkg.model", "Net"), Judgment::Unknown);
        assert_eq!(judge("os ", "system"), Judgment::Unknown);
        assert_eq!(judge("builtins", "print").severity(), Some(Severity::High));
    }
}
