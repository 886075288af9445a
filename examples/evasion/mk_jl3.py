import joblib, numpy as np, io
class NS(io.RawIOBase):
    def __init__(s): s.b = bytearray()
    def writable(s): return True
    def write(s, d): s.b += d; return len(d)
    def seekable(s): return False
    def tell(s): raise io.UnsupportedOperation()
f = NS()
joblib.dump({"w": np.arange(1000, dtype=np.float64), "b": np.ones((3,4), np.float32)}, f)
open("benign_jl_nonseekable.joblib","wb").write(bytes(f.b))
print(b"numpy_array_alignment_bytes" in f.b)
