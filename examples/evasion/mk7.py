d = open("/tmp/rt15/_tmp_obj.joblib","rb").read().replace(b"pwned_X", b"pwned_J")
i = d.index(b"\x8c\x02O8")
d = d[:i] + b"\x8c\x06object" + d[i+4:]
assert d[2] == 0x95
n = int.from_bytes(d[3:11], "little") + 4
d = d[:3] + n.to_bytes(8, "little") + d[11:]
open("fn_joblib_dtype_object.joblib","wb").write(d)
