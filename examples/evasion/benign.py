"""Writes tests/fixtures/evasion/benign: look-alikes of the round-15 evasions that must scan clean.
Needs numpy and joblib (with lz4). Run from the repository root: python3 examples/evasion/benign.py"""
import io, json, tarfile, zipfile
import joblib
import numpy as np

OUT = "tests/fixtures/evasion/benign/"

def tar(name, members):
    with tarfile.open(OUT + name, "w", format=tarfile.GNU_FORMAT) as t:
        for n, b in members:
            ti = tarfile.TarInfo(n)
            ti.size = len(b)
            t.addfile(ti, io.BytesIO(b))

tar("benign-tar-config-first.tar", [("config.json", b'{\n  "hidden_size": 8,\n  "name": "x"\n}\n'), ("weights.bin", bytes(range(256)))])
tar("benign-tar-index-first.tar", [("index.txt", b"import numpy as np\nprint(1)\n")])
open(OUT + "benign-readme-import.txt", "w").write("import numpy as np\nimport os\nos.system is not called here\n")
np.save(OUT + "benign-uint8-0x80.npy", np.array([128, 3, 1, 2, 3, 99, 111, 115, 10], dtype=np.uint8))
buf = io.BytesIO()
np.save(buf, np.arange(12, dtype=np.float32))
for name, method in [("benign-npz-bzip2.npz", zipfile.ZIP_BZIP2), ("benign-npz-lzma.npz", zipfile.ZIP_LZMA)]:
    with zipfile.ZipFile(OUT + name, "w", method) as z:
        z.writestr("a.npy", buf.getvalue())
with zipfile.ZipFile(OUT + "benign-keras-no-metadata.keras", "w") as z:
    z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 2}}]}}))
    z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
joblib.dump({"w": np.arange(10, dtype=np.float64), "b": np.ones(3, dtype=bool)}, OUT + "benign-joblib-lz4.joblib", compress="lz4")
joblib.dump({"w": np.arange(10, dtype=np.float64)}, OUT + "benign-joblib-lzma.joblib", compress="lzma")
