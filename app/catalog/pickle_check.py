"""Tell, without unpickling, whether `torch.load(weights_only=True)` would accept a pickled weights file.

The upscaler loader (app/upscale/models.py) opens .pth/.pt files that way, so the catalog lists such a
file as usable only when that load would succeed as far as the pickle goes. The file's pickle opcodes
are read with pickletools (which never builds an object): torch's weights-only unpickler takes only
GLOBAL imports from a short allow-list (tensor rebuild functions, storages, dtypes, OrderedDict ...)
and reads only the opcodes of protocol 2, so other ways to import (STACK_GLOBAL, INST, OBJ ...) fail.

Both torch.save formats are read: the zip archive (torch >= 1.6; its `data.pkl` holds the structure,
the tensors are separate entries and are not read) and the legacy stream of five pickles followed by
raw storage bytes (only the pickles are read).
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

# torch/_weights_only_unpickler.py `_get_allowed_globals`, as patterns over "module.name".
_ALLOWED_EXACT = frozenset({
    "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device", "_codecs.encode",
    "builtins.bytearray", "builtins.set", "builtins.complex", "torch._tensor._rebuild_from_type_v2",
})
_ALLOWED_PATTERNS = (
    re.compile(r"torch\._utils\._rebuild_\w+"),
    re.compile(r"torch(\.cuda)?(\.sparse|\.storage)?\.\w*(Storage|Tensor)"),  # FloatStorage, HalfTensor...
    re.compile(r"torch\.(bool|bfloat16|b?complex\d+|float\d+(_\w+)?|q?u?int\d+(x\d+)?|bits\w+)"),  # dtypes
    re.compile(r"torch\.per_(tensor|channel)_\w+"),
)
# Python 2 names that torch's reader maps to Python 3 ones (protocol 2 pickles may use them).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# The opcodes torch's weights-only Unpickler.load reads (torch.save writes protocol 2, all of them here).
WEIGHTS_ONLY_OPCODES = frozenset({
    "PROTO", "STOP", "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "EMPTY_LIST",
    "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING",
    "BINPERSID", "LONG1", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT",
})
LEGACY_PICKLES = 5  # magic number, protocol, sys info, the object, storage keys
CODE_REASON = "pickled code: it imports {}, which a weights-only load refuses; use a .safetensors copy"
UNREAD_REASON = "a pickle a weights-only load cannot read (opcodes {}); use a .safetensors copy"
NOT_TORCH_REASON = "not a PyTorch weights file ({})"


def weights_only_problem(path: Path) -> str | None:
    """Why a weights-only torch.load of `path` would fail, or None when its pickle is acceptable."""
    try:
        for data in _pickles(Path(path)):
            imports, unread = _read_opcodes(data)
            refused = [name for name in imports if not _allowed(name)]
            if refused:
                return CODE_REASON.format(", ".join(dict.fromkeys(refused)))
            if unread:
                return UNREAD_REASON.format(", ".join(dict.fromkeys(unread)))
    except (OSError, zipfile.BadZipFile) as e:
        return NOT_TORCH_REASON.format(getattr(e, "strerror", None) or e)
    except _NotAPickle as e:
        return NOT_TORCH_REASON.format(e)
    return None


class _NotAPickle(Exception):
    pass


def _pickles(path: Path) -> Iterator[io.BytesIO]:
    """The pickles torch.load would read, one at a time (a legacy stream is read only as far as asked)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                raise _NotAPickle("a zip archive without data.pkl")
            yield io.BytesIO(archive.read(names[0]))
        return
    with open(path, "rb") as f:
        for _ in range(LEGACY_PICKLES):
            yield _one_pickle(f)


def _one_pickle(f) -> io.BytesIO:
    """Consume one pickle of a legacy stream (leaving `f` after its STOP) and return its bytes."""
    start = f.tell()
    try:
        for _ in pickletools.genops(f):
            pass
    except Exception as e:  # genops raises ValueError and friends on anything that is not a pickle
        raise _NotAPickle("not a pickle stream" if start == 0 else "the stream ends early") from e
    end = f.tell()
    f.seek(start)
    return io.BytesIO(f.read(end - start))


def _read_opcodes(data: io.BytesIO) -> tuple[list[str], list[str]]:
    """(every "module.name" the pickle imports, the opcodes in it torch's weights-only reader refuses).

    That reader imports only by GLOBAL; an import by STACK_GLOBAL (protocol 4) is named from the two
    strings pushed just before it, as far as they can be told."""
    imports: list[str] = []
    unread: list[str] = []
    pushed: list[object] = []  # the last two values pushed (enough to name a STACK_GLOBAL)
    memo: dict[int, object] = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                imports.append(f"{_PY2_MODULES.get(module, module)}.{attr}")
            elif name == "STACK_GLOBAL":
                parts = pushed[-2:]
                named = len(parts) == 2 and all(isinstance(p, str) for p in parts)
                imports.append(".".join(parts) if named else "an unnamed global")
            if name not in WEIGHTS_ONLY_OPCODES:
                unread.append(name)
            if name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name.endswith("PUT"):
                memo[int(arg)] = pushed[-1] if pushed else None
            elif name.endswith("GET"):
                pushed = [*pushed[-1:], memo.get(int(arg))]
            elif "UNICODE" in name:
                pushed = [*pushed[-1:], str(arg)]
            elif opcode.stack_after:
                pushed = [*pushed[-1:], None]
    except Exception as e:
        raise _NotAPickle("a damaged pickle") from e
    return imports, unread


def _allowed(name: str) -> bool:
    return name in _ALLOWED_EXACT or any(p.fullmatch(name) for p in _ALLOWED_PATTERNS)
