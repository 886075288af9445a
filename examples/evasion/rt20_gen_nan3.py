import h5py, json
D='/tmp/rt20b/bypass/'
def nanfirst(d):
    n={'zz':float('nan')}; n.update(d); d.clear(); d.update(n)
src=h5py.File(D+'lambda_plain.h5','r'); dst=h5py.File(D+'lambda_nan3.h5','w')
for k in src: src.copy(k,dst)
for k,v in src.attrs.items():
    if k=='model_config':
        c=json.loads(v)
        for L in c['config']['layers']:
            if L['class_name']=='Lambda': nanfirst(L['config']['function']); nanfirst(L)
        v=json.dumps(c)
    dst.attrs[k]=v
dst.close()
