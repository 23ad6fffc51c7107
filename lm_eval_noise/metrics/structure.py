"""Structure classes for code: the K samples grouped by their syntax tree up to naming.

Two samples fall in one class when their Python ASTs are equal after
(1) removing docstrings and other bare string statements, which like comments do nothing
(comments never reach the AST), and (2) renaming the program's own names canonically:
each name the program binds (variables, parameters, functions, classes, import aliases,
exception and match targets, global/nonlocal names) becomes `_v0`, `_v1`, ... in the order
it first appears. Constants, operators, attribute names, keyword-argument names and names
the program does not bind (builtins such as `len`, imported modules' members) are kept, so
`a + 1` and `a - 1`, or `len(x)` and `sum(x)`, stay apart. The renaming is one map per
program, not per scope: programs equal up to a one-to-one renaming of their own names fall
in one class; a program that reuses one name in two functions differs from one that uses
two names. A body left empty by the removal becomes `pass`.

The aim is the "surface vs algorithm" distinction of the study (README, The study): noise that only
renames variables or rewrites comments leaves the class count unchanged; a new algorithm
adds a class. Reference: AST-based code similarity as in CodeBLEU's syntactic match (Ren et
al. 2020) and, for clone detection, Baxter et al. 1998 (*Clone Detection Using Abstract
Syntax Trees*).
"""

from __future__ import annotations

import ast
import hashlib
import math
import warnings

from lm_eval_noise.metrics._common import check_texts, non_empty

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def structure_key(code: str) -> str | None:
    """The canonical form of `code` (a string; equal strings = one structure class), or None
    when `code` is empty or does not parse."""
    if not isinstance(code, str):
        raise ValueError(f"code must be a str, got {type(code).__name__}")
    if not code.strip():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            tree = ast.parse(code)
        tree = _Canonical(_bound_names(tree)).visit(tree)
        return ast.dump(tree)
    except (SyntaxError, ValueError, RecursionError):
        return None


def structure_digest(code: str) -> str | None:
    """A short hash of `structure_key(code)` (what a per-sample record keeps), or None likewise."""
    key = structure_key(code)
    return None if key is None else hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def ast_classes(codes: list[str]) -> int:
    """Number of distinct structure classes among the samples that parse (empty ones left out).

    Range [0, K]: 0 when no sample parses, 1 when all parsing samples share one structure.
    """
    keys = [structure_key(c) for c in check_texts(codes, "codes")]
    return len({k for k in keys if k is not None})


def structural_diversity(codes: list[str]) -> float:
    """(ast_classes - 1) / (N - 1) over the N non-empty samples that parse.

    Range [0, 1]; higher is more diverse: 0 when all N share one structure, 1 when all N
    differ. Fewer than two parsing samples: NaN (not measurable). The same normalisation as
    the study's functional diversity (classes - 1) / (K - 1).
    """
    codes = check_texts(codes, "codes")
    keys = [k for k in (structure_key(codes[i]) for i in non_empty(codes)) if k is not None]
    if len(keys) < 2:
        return math.nan
    return (len(set(keys)) - 1) / (len(keys) - 1)


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the program itself binds."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, _FUNCTIONS):
            bound.add(node.name)
        elif isinstance(node, ast.alias) and node.name != "*":
            bound.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound


class _Canonical(ast.NodeTransformer):
    """Drops bare string statements and renames bound names in order of first appearance."""

    def __init__(self, bound: set[str]) -> None:
        self.bound = bound
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.names.setdefault(name, f"_v{len(self.names)}")

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list) and not body and not isinstance(node, ast.Module):
            setattr(node, "body", [ast.Pass()])  # a function that held only a docstring reads as `pass`
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # docstring, or a string used as a comment: no effect
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._name(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._name(node.arg)
        return self.generic_visit(node)

    def _visit_named(self, node):
        node.name = self._name(node.name)
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_named

    def visit_alias(self, node: ast.alias) -> ast.AST:
        if node.name != "*":
            node.asname = self._name(node.asname or node.name.split(".")[0])
        return node

    def visit_Global(self, node: ast.Global) -> ast.AST:
        node.names = [self._name(n) for n in node.names]
        return node

    visit_Nonlocal = visit_Global  # type: ignore[assignment]  # the same fields

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._name(node.name)
        return self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> ast.AST:
        if node.name:
            node.name = self._name(node.name)
        return self.generic_visit(node)

    visit_MatchStar = visit_MatchAs  # type: ignore[assignment]  # the same fields

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        if node.rest:
            node.rest = self._name(node.rest)
        return self.generic_visit(node)
