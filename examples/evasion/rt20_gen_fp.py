import struct
from safetensors.numpy import load_file
D='/tmp/rt20b/st_edge/'
cases={
 'meta_null':b'{"__metadata__":null,"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}',
 'esc_key':b'{"\\u0061":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}',
 'extra_field':b'{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3],"x":1}}',
 'exp_num':b'{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3e0]}}',
 'empty_hdr':b'{}',
 'neg_zero':b'{"a":{"dtype":"U8","shape":[3],"data_offsets":[-0,3]}}',
 'dup_key':b'{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}',
 'two_empty_same':b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}',
 'empty_at_end':b'{"c":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"a":{"dtype":"U8","shape":[0],"data_offsets":[3,3]}}',
 'meta_nonstr':b'{"__metadata__":{"a":1},"c":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}',
 'bom':b'\xef\xbb\xbf{"c":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}',
 'nul_pad':b'{"c":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}\x00\x00',
}
for n,h in cases.items():
    p=D+n+'.safetensors'; open(p,'wb').write(struct.pack('<Q',len(h))+h+b'abc')
    try: r=load_file(p); print('LIB OK',n,list(r))
    except Exception as e: print('lib rejects',n,str(e)[:80])
