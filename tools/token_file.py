"""llm.c's token files (docs/training.md), for the tools that read them."""
import numpy as np


def read_tokens(path):
    """The ids of a token file: 256 int32 of header (magic 20240520, version
    1 for uint16 ids or 2 for uint32, the count), then the ids."""
    header = np.fromfile(path, dtype=np.int32, count=256)
    assert header[0] == 20240520, f"{path}: not a token file"
    dtype = np.uint16 if header[1] == 1 else np.uint32
    return np.fromfile(path, dtype=dtype, offset=1024, count=int(header[2])).astype(np.int64)
