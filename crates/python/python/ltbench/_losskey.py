"""The record key of a custom loss: a hash of what determines what it computes.

``loss_key(kind, fn, constants)`` hashes, recursively:

- a function: its code object (bytecode, constants with nested code, names, variable names,
  argument counts, flags, exception table; not its name, file or line numbers), its closure
  cells' values, ``__defaults__`` / ``__kwdefaults__``, its ``__dict__``, and the values of
  the module globals its code reads (every name of its code, and of nested code, that
  resolves in ``fn.__globals__``);
- ``functools.partial``: the function, ``args`` and ``keywords``; a bound method: ``self``
  and the function; a callable object (or any instance of a class written in Python): its
  class (every attribute of the class and its bases: methods, properties, class constants)
  and its instance state (``__dict__`` and ``__slots__``);
- values of known kinds: ``None``, bool, int, float, complex, str, bytes; tuples, lists,
  dicts and sets of such (dicts and sets in sorted order); numpy arrays (dtype, shape,
  bytes) and scalars; torch tensors (through ``.detach().cpu().numpy()``); enum members;
- modules by name; functions, classes and other objects that an installed package or the
  standard library defines at module level by module, name and the package's
  ``__version__``.

Anything else (a random generator, a lock, a file, an object whose state lives in C)
cannot be hashed deterministically: ``Unkeyable`` says which part, and the caller never
reuses that loss's records. Cycles (a recursive function, an object that holds itself) are
hashed as a back-reference.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import os
import site
import sys
import sysconfig
import types
from typing import Any, Mapping

import numpy as np

__all__ = ["Unkeyable", "loss_key"]


class Unkeyable(Exception):
    """A part of a loss whose value cannot be hashed deterministically (the message names it)."""


# attributes of a class that say nothing of what its methods compute
_CLASS_NOISE = frozenset({
    "__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__firstlineno__",
    "__static_attributes__", "__annotations__", "__annotate__", "__annotate_func__",
    "__annotations_cache__", "__orig_bases__", "__parameters__", "__type_params__", "_abc_impl",
})
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, type(...), type(NotImplemented)})
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement (or type())
_DESCRIPTORS = (
    types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
    types.MethodWrapperType, types.ClassMethodDescriptorType,
)


def _h(tag: bytes, *parts: bytes) -> bytes:
    """A digest of ``tag`` and ``parts``, each length-prefixed (no two lists hash alike)."""
    h = hashlib.sha256(tag)
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()


def _scalar(x: Any) -> bytes:
    t = type(x)
    if t is float:
        return _h(b"float", x.hex().encode())
    if t is complex:
        return _h(b"complex", x.real.hex().encode(), x.imag.hex().encode())
    if t is str:
        return _h(b"str", x.encode("utf-8", "surrogatepass"))
    if t is bytes:
        return _h(b"bytes", x)
    # None, bool, int, Ellipsis, NotImplemented: the type name tells 1 from 1.0 from True
    return _h(t.__name__.encode(), repr(x).encode())


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # an old virtualenv's site module
        pass
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths if p)


def _installed(module: Any) -> bool:
    """True for a module of the standard library or of an installed package (not
    ``__main__``, not a module of the user's own source tree)."""
    if not isinstance(module, str) or module == "__main__":
        return False
    m = sys.modules.get(module)
    if m is None:
        return False
    f = getattr(m, "__file__", None)
    if f is None:
        origin = getattr(getattr(m, "__spec__", None), "origin", None)
        return module in sys.builtin_module_names or origin in ("built-in", "frozen")
    return os.path.realpath(f).startswith(_installed_roots())


def _version(module: str) -> bytes:
    v = getattr(sys.modules.get(module.partition(".")[0]), "__version__", None)
    return v.encode() if isinstance(v, str) else b""


def _importable(obj: Any) -> tuple[str, str] | None:
    """(module, qualified name) when ``obj`` is what that name of an installed module is."""
    try:
        mod = getattr(obj, "__module__", None)
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    except Exception:
        return None
    if not isinstance(name, str) or "<" in name or not _installed(mod):
        return None
    found: Any = sys.modules[mod]
    for part in name.split("."):
        found = getattr(found, part, None)
    return (mod, name) if found is obj else None


def _python_class(cls: type) -> bool:
    """True when every class of ``cls``'s MRO but ``object`` is written in Python, with its
    instances' state in ``__dict__`` or ``__slots__`` (not in C, or Rust)."""
    for c in cls.__mro__:
        if c is object:
            continue
        if not c.__flags__ & _HEAPTYPE:
            return False
        if c.__dictoffset__ == 0 and "__slots__" not in c.__dict__:
            return False
    return True


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


class _Keyer:
    def __init__(self) -> None:
        self.path: dict[int, int] = {}  # id → depth of the objects being hashed (cycles)
        self.done: dict[int, tuple[Any, bytes]] = {}  # id → (object kept alive, digest)

    def key(self, obj: Any, where: str) -> bytes:
        if type(obj) in _SCALARS:
            return _scalar(obj)
        i = id(obj)
        if i in self.done:
            return self.done[i][1]
        if i in self.path:
            return _h(b"cycle", str(len(self.path) - self.path[i]).encode())
        self.path[i] = len(self.path)
        try:
            d = self._key(obj, where)
        finally:
            del self.path[i]
        self.done[i] = (obj, d)
        return d

    def _all(self, xs: Any, where: str) -> list[bytes]:
        return [self.key(x, f"{where}[{j}]") for j, x in enumerate(xs)]

    def _items(self, items: Any, where: str) -> list[bytes]:
        pairs = sorted((self.key(k, where), self.key(v, f"{where}[{k!r}]")) for k, v in items)
        return [p for kv in pairs for p in kv]

    def _key(self, obj: Any, where: str) -> bytes:
        t = type(obj)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor):
            return self._tensor(obj, where)
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise Unkeyable(f"{where}: a numpy array of Python objects")
            a = np.ascontiguousarray(obj)
            return _h(b"ndarray", repr(a.dtype).encode(), repr(a.shape).encode(), a.tobytes())
        if isinstance(obj, np.generic):
            return _h(b"numpy-scalar", self.key(np.asarray(obj), where))
        if isinstance(obj, np.dtype):
            return _h(b"dtype", repr(obj).encode())
        if t in (tuple, list):
            return _h(t.__name__.encode(), *self._all(obj, where))
        if t in (dict, types.MappingProxyType):
            return _h(b"dict", *self._items(obj.items(), where))
        if t in (set, frozenset):
            return _h(b"set", *sorted(self.key(x, where) for x in obj))
        if isinstance(obj, (range, slice)):
            return _h(t.__name__.encode(), *self._all((obj.start, obj.stop, obj.step), where))
        if isinstance(obj, types.ModuleType):
            return _h(b"module", obj.__name__.encode())
        if isinstance(obj, types.CodeType):
            return self._code(obj, where)
        if isinstance(obj, enum.Enum):
            return _h(b"enum", self.key(t, where), obj.name.encode())
        named = _importable(obj)
        if named is not None:
            return _h(b"named", named[0].encode(), named[1].encode(), _version(named[0]))
        if isinstance(obj, type):
            return self._class(obj, where)
        if isinstance(obj, types.FunctionType):
            return self._function(obj, where)
        if isinstance(obj, types.MethodType):
            return _h(b"method", self.key(obj.__func__, where), self.key(obj.__self__, f"{where}.__self__"))
        if isinstance(obj, functools.partial):
            return _h(
                b"partial",
                self.key(obj.func, f"{where}.func"),
                self.key(obj.args, f"{where}.args"),
                self.key(obj.keywords, f"{where}.keywords"),
                self.key(vars(obj), where),
            )
        if isinstance(obj, (staticmethod, classmethod)):
            return _h(t.__name__.encode(), self.key(obj.__func__, where))
        if isinstance(obj, property):
            return _h(b"property", *self._all((obj.fget, obj.fset, obj.fdel), where))
        if isinstance(obj, _DESCRIPTORS):
            # a builtin bound to an object (`rng.normal`), or a C method of a class
            owner = getattr(obj, "__self__", None)
            if owner is None:
                owner = getattr(obj, "__objclass__", None)
            name = getattr(obj, "__name__", "")
            return _h(b"builtin", name.encode(), self.key(owner, f"{where}.__self__"))
        if isinstance(obj, (tuple, list, dict, set, frozenset)):
            # a subclass (namedtuple, OrderedDict, defaultdict, ...): its class, its items
            # and its attributes
            items = self._items(obj.items(), where) if isinstance(obj, dict) else (
                self._all(obj, where) if isinstance(obj, (tuple, list)) else
                sorted(self.key(x, where) for x in obj)
            )
            extra = [self.key(getattr(obj, "default_factory", None), where)]
            if hasattr(obj, "__dict__"):
                extra.append(self.key(vars(obj), where))
            return _h(b"subclass", self.key(t, where), *extra, *items)
        if _python_class(t):
            return self._instance(obj, where)
        raise Unkeyable(
            f"{where}: a {t.__module__}.{t.__qualname__} (its state is not in __dict__ or __slots__)"
        )

    def _tensor(self, x: Any, where: str) -> bytes:
        try:
            t = x.detach().cpu()
            try:
                a = t.contiguous().numpy()
            except (TypeError, RuntimeError):  # bfloat16 and the like: exact in float32
                a = t.float().contiguous().numpy()
        except Exception as e:
            raise Unkeyable(f"{where}: a torch tensor that numpy cannot read ({e})") from None
        return _h(b"tensor", str(x.dtype).encode(), self.key(a, where))

    def _code(self, co: types.CodeType, where: str) -> bytes:
        return _h(
            b"code",
            co.co_code,
            repr((co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_flags)).encode(),
            self.key(co.co_consts, f"{where} (constants)"),
            self.key((co.co_names, co.co_varnames, co.co_freevars, co.co_cellvars), where),
            getattr(co, "co_exceptiontable", b""),
        )

    def _function(self, fn: types.FunctionType, where: str) -> bytes:
        code = fn.__code__
        parts = [
            self.key(code, where),
            self.key(fn.__defaults__, f"{where}: a default"),
            self.key(fn.__kwdefaults__, f"{where}: a default"),
            self.key(vars(fn), f"{where}.__dict__"),
        ]
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not yet assigned
                parts.append(_h(b"empty-cell", name.encode()))
                continue
            parts.append(_h(name.encode(), self.key(value, f"{where}: closure variable `{name}`")))
        g = fn.__globals__
        for name in sorted(_global_names(code)):
            if name in g:
                parts.append(_h(name.encode(), self.key(g[name], f"{where}: global `{name}`")))
        return _h(b"function", *parts)

    def _class(self, cls: type, where: str) -> bytes:
        where = f"{where} (class {cls.__qualname__})"
        parts = [self.key(type(cls), where), *self._all(cls.__bases__, where)]
        for name in sorted(cls.__dict__):
            v = cls.__dict__[name]
            if name in _CLASS_NOISE or isinstance(v, (types.MemberDescriptorType, types.GetSetDescriptorType)):
                continue
            parts.append(_h(name.encode(), self.key(v, f"{where}.{name}")))
        return _h(b"class", *parts)

    def _instance(self, obj: Any, where: str) -> bytes:
        t = type(obj)
        parts = [self.key(t, where)]
        if hasattr(obj, "__dict__"):
            parts.append(self.key(vars(obj), f"{where}.__dict__"))
        for c in t.__mro__:
            slots = c.__dict__.get("__slots__", ())
            for s in (slots,) if isinstance(slots, str) else slots:
                if s in ("__dict__", "__weakref__"):
                    continue
                attr = f"_{c.__name__.lstrip('_')}{s}" if s.startswith("__") else s
                if hasattr(obj, attr):
                    parts.append(_h(s.encode(), self.key(getattr(obj, attr), f"{where}.{s}")))
                else:
                    parts.append(_h(b"unset-slot", s.encode()))
        return _h(b"object", *parts)


def loss_key(kind: str, fn: Any, constants: Mapping[str, Any]) -> int:
    """The 63-bit record key of the custom loss ``fn`` (``kind``: how it is called, "numpy"
    or "torch") with ``constants``; raises ``Unkeyable`` naming a part that cannot be hashed
    deterministically."""
    k = _Keyer()
    try:
        d = _h(
            b"ltbench custom loss 1",
            kind.encode(),
            k.key(fn, "the loss"),
            k.key(dict(constants), "constants"),
        )
    except RecursionError:
        raise Unkeyable("the loss: nested too deeply to hash") from None
    return int.from_bytes(d[:8], "little") >> 1
