import numpy as np, torch, joblib, tarfile, json, struct, io, os
os.chdir("benign")
for dt in ["f4","f8","i8","u1","bool","c8","U5","S3","f2"]:
    np.save(f"np_{dt}.npy", np.zeros(5, dtype=dt))
np.savez("np_savez.npz", a=np.arange(10), b=np.ones((3,3),"f4"))
np.savez_compressed("np_savezc.npz", a=np.arange(1000), b=np.ones((3,3),"f4"))
m = torch.nn.Sequential(torch.nn.Linear(4,4), torch.nn.ReLU(), torch.nn.Linear(4,2))
torch.save(m.state_dict(), "torch_sd.pt")
torch.save({"epoch":3,"model":m.state_dict(),"opt":torch.optim.Adam(m.parameters()).state_dict()}, "torch_ckpt.pt")
torch.save(m.state_dict(), "torch_legacy.pt", _use_new_zipfile_serialization=False)
d = {"coef": np.random.rand(10,3), "intercept": np.zeros(3), "classes": np.array([0,1,2]), "params": {"C":1.0,"penalty":"l2"}}
for c in [0, 3, ("zlib",3), ("gzip",3), ("bz2",3), ("lzma",3), ("xz",3), ("lz4",3)]:
    tag = c if isinstance(c,int) else c[0]
    joblib.dump(d, f"joblib_{tag}.joblib", compress=c)
# safetensors by hand
hdr = json.dumps({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}).encode()
open("model.safetensors","wb").write(struct.pack("<Q",len(hdr))+hdr+b"\0"*16)
# HF folder tar.gz
with tarfile.open("hf.tar.gz","w:gz") as t:
    for name,data in [("model/config.json", json.dumps({"architectures":["LlamaForCausalLM"],"hidden_size":64}).encode()),
                      ("model/tokenizer.json", b'{"version":"1.0"}'), ("model/model.safetensors", open("model.safetensors","rb").read())]:
        ti=tarfile.TarInfo(name); ti.size=len(data); t.addfile(ti, io.BytesIO(data))
def gguf(template):
    def s(x): x = x.encode(); return struct.pack("<Q", len(x)) + x
    kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
    kv += s("tokenizer.chat_template") + struct.pack("<I", 8) + s(template)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv
LLAMA3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
QWEN = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
NS = "{%- set ns = namespace(found=false) -%}{%- for message in messages -%}{%- if message['role'] == 'system' -%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}{{ ns.found }}"
for n,t in [("llama3",LLAMA3),("qwen",QWEN),("ns",NS)]: open(f"{n}.gguf","wb").write(gguf(t))
