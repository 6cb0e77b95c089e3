"""The model's code in its provenance: a hash of the source of the classes a model is built from.

Results are keyed by name + weights hash; a wrapper or defense whose ``forward`` changes without a
rename would otherwise reuse old outcomes. :func:`code_sha256` hashes, for the model and every
submodule, its class and the classes of its MRO defined in the same top-level package (so a
third-party ``Defense`` subclass counts its own code, symbench's ``Defense`` counts symbench's), never
``torch`` itself (its version is in every row's toolkits).

Source is normalized through the AST with docstrings dropped, so comments, docstrings and formatting
do not change the hash; where no source can be read (a class made by ``exec``), the methods'
bytecode is hashed instead, and failing that the class's qualified name.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import marshal
import textwrap
from functools import lru_cache

from torch import nn

SKIPPED_PACKAGES = frozenset({"torch"})


def _top(module_name: str | None) -> str:
    return (module_name or "").split(".")[0]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def _bytecode(cls: type) -> bytes:
    """Fallback when no source file exists: the marshalled code of every function the class defines."""
    parts = []
    for key, value in sorted(vars(cls).items()):
        fn = getattr(value, "__func__", value)  # classmethod / staticmethod
        code = getattr(fn, "__code__", None)
        if code is not None:
            parts.append(key.encode() + marshal.dumps(code.replace(co_filename="", co_firstlineno=1)))
    return b"\0".join(parts)


@lru_cache(maxsize=None)
def class_source_hash(cls: type) -> str:
    """sha256 of one class's normalized source (its own body only), or of its bytecode as a fallback."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
        try:
            body = ast.dump(_strip_docstrings(ast.parse(src)), include_attributes=False).encode()
        except SyntaxError:
            body = src.encode()
    except (OSError, TypeError):
        body = _bytecode(cls) or f"{cls.__module__}.{cls.__qualname__}".encode()
    return hashlib.sha256(body).hexdigest()


def _classes(model: nn.Module) -> list[type]:
    """The classes whose code decides what ``model`` computes (see the module docstring), sorted by name."""
    seen: dict[str, type] = {}
    for m in model.modules():
        cls = type(m)
        top = _top(cls.__module__)
        if top in SKIPPED_PACKAGES:
            continue
        for c in cls.__mro__:
            if _top(c.__module__) == top:
                seen[f"{c.__module__}.{c.__qualname__}"] = c
    return [seen[k] for k in sorted(seen)]


def code_sha256(model: nn.Module) -> str:
    """One sha256 over the code of every class ``model`` is made of (see the module docstring)."""
    h = hashlib.sha256()
    for cls in _classes(model):
        h.update(f"{cls.__qualname__}:{class_source_hash(cls)}\n".encode())  # a moved class computes the same
    return h.hexdigest()
