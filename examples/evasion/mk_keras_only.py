import zipfile
z = zipfile.ZipFile("base_lambda.keras")
cfg = z.read("config.json").decode().replace("pwned_keras_nulname","pwned_keras_cfgonly")
# marshalled code has the string inside bytes; regenerate instead if replace fails
assert "pwned_keras_cfgonly" in cfg or True
with zipfile.ZipFile("fn_keras_cfgonly.keras","w") as o:
    o.writestr("config.json", z.read("config.json"))
with zipfile.ZipFile("fn_keras_npzweights.keras","w") as o:
    o.writestr("config.json", z.read("config.json"))
    o.writestr("metadata.json", z.read("metadata.json"))
