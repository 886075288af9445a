import os
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, joblib, torch, keras, onnx
from onnx import helper, TensorProto, numpy_helper
d = "/tmp/rt17/benign/"
np.save(d+"a.npy", np.arange(10.)); np.savez_compressed(d+"a.npz", a=np.ones((3,3)), b=np.arange(5))
a = np.empty(2, dtype=[('x','i4'),('y','f8')]); joblib.dump({"s": a, "w": np.arange(100.)}, d+"struct.joblib")
for c in ["zlib","gzip","bz2","lzma","xz","lz4"]: joblib.dump({"w": np.arange(1000.), "l": [1,2]}, d+f"c_{c}.joblib", compress=(c,3))
net = torch.nn.Sequential(torch.nn.Linear(4,8), torch.nn.ReLU(), torch.nn.Linear(8,2))
opt = torch.optim.Adam(net.parameters()); net(torch.randn(2,4)).sum().backward(); opt.step()
torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "epoch": 3, "nested": {"a": [torch.ones(2), {"b": torch.zeros(3, dtype=torch.int64)}]}}, d+"ckpt.pt")
torch.save(net, d+"full_module.pt")
m = keras.Sequential([keras.Input((8,8,1)), keras.layers.Conv2D(4,3,activation="relu"), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
m.save(d+"small.keras"); m.save(d+"small.h5")
W = numpy_helper.from_array(np.random.rand(64,64).astype(np.float32), "W")
g = helper.make_graph([helper.make_node("MatMul", ["x","W"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1,64])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1,64])], [W])
mo = helper.make_model(g); os.makedirs(d+"onnxext", exist_ok=True)
onnx.save(mo, d+"onnxext/model.onnx", save_as_external_data=True, all_tensors_to_one_file=True, location="weights.data", size_threshold=0)
