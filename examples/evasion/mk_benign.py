import os
os.environ["KERAS_BACKEND"]="torch"
import torch, numpy as np, joblib, keras
B="benign/"
m = torch.nn.Sequential(torch.nn.Linear(4,8), torch.nn.ReLU(), torch.nn.Linear(8,2))
opt = torch.optim.Adam(m.parameters()); m(torch.randn(3,4)).sum().backward(); opt.step()
torch.save(opt.state_dict(), B+"opt_state.pt")
torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "epoch": 3, "sched": torch.optim.lr_scheduler.StepLR(opt, 2).state_dict()}, B+"ckpt_full.pt")
t = torch.arange(20.); torch.save({"a": t, "b": t[5:10], "c": t.view(4,5), "p": torch.nn.Parameter(torch.ones(3))}, B+"shared.pt")
torch.save(m, B+"whole_module.pt")  # pickles the class: expected high (torch.nn.* classes)
torch.jit.save(torch.jit.script(m), B+"jit_script.pt")
torch.jit.save(torch.jit.trace(m, torch.randn(1,4)), B+"jit_trace.pt")
torch.save(m.state_dict(), B+"mmap_sd.pt")
try:
    ep = torch.export.export(m, (torch.randn(2,4),))
    torch.export.save(ep, B+"export.pt2")
except Exception as e: print("export", e)
rng = np.random.default_rng(0)
joblib.dump({"rng": rng, "legacy": np.random.RandomState(0), "w": rng.standard_normal((10,3))}, B+"jl_rng.joblib")
joblib.dump({"rng": rng, "w": np.ones(5)}, B+"jl_rng_z.joblib", compress=3)
@keras.saving.register_keras_serializable(package="my")
class MyDense(keras.layers.Layer):
    def __init__(s, units=2, **kw): super().__init__(**kw); s.units=units
    def build(s, shp): s.w = s.add_weight(shape=(shp[-1], s.units))
    def call(s, x): return x @ s.w
    def get_config(s): return {**super().get_config(), "units": s.units}
km = keras.Sequential([keras.Input((4,)), MyDense(3), keras.layers.Dense(2)])
km.compile(optimizer="adam", loss="mse", metrics=["mae"])
km.save(B+"keras_custom.keras")
km.save(B+"keras_custom.h5")
