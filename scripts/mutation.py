"""`make mutation`: mutate the security rules and score how many mutants the tests kill.

Runs mutmut (configured in pyproject.toml's [tool.mutmut]) over the guard rules, the
simulation's outcome checks and the journal, then scores each module. A mutant that only
changes message text is left out of the score: its mutated function, with every sentence
literal (a string holding whitespace, or an f-string) replaced by one placeholder, is the
same syntax tree as the original's. Identifiers in strings ("recipient", "swap") contain
no whitespace, so their mutants still count. "No tests" mutants count as survivors.

Exit 0 when every module reaches the threshold (90%, or --threshold), 1 otherwise.
`--survivors` lists the surviving mutants (then `mutmut show NAME` shows one).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
KILLED = {1, 3, 37}  # a failing test, pytest's internal error, the type checker
SURVIVED = {0, 5, 33}  # no test failed, or no test covers the mutated function
_MESSAGE = "<message>"


class _Sentences(ast.NodeTransformer):
    """Replace message text with one placeholder so two trees differ only in logic."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return ast.copy_location(ast.Constant(_MESSAGE), node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and any(c.isspace() for c in node.value):
            return ast.copy_location(ast.Constant(_MESSAGE), node)
        return node


def _shape(function: ast.AST) -> str:
    body = _Sentences().visit(ast.parse(ast.unparse(function)))
    # The mutant's name differs from the original's: compare everything but the name.
    for node in ast.walk(body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.name = "f"
            break
    return ast.dump(body, annotate_fields=False)


def _functions(source: Path) -> dict[str, ast.AST]:
    tree = ast.parse(source.read_text())
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def message_only(key: str, functions: dict[str, ast.AST]) -> bool:
    """True when the mutant `key` changes nothing but message text."""
    name = key.rsplit(".", 1)[1]
    original = functions.get(name.rsplit("__mutmut_", 1)[0] + "__mutmut_orig")
    mutant = functions.get(name)
    if original is None or mutant is None:
        return False
    return _shape(original) == _shape(mutant)


def score() -> dict[str, dict[str, list[str]]]:
    """Per module: killed, survived and message-only mutant names."""
    result: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not exit_codes:
            continue
        source = meta.with_suffix("")
        module = str(source.relative_to(MUTANTS))
        functions = _functions(source)
        for key, code in exit_codes.items():
            if message_only(key, functions):
                result[module]["message"].append(key)
            elif code in KILLED:
                result[module]["killed"].append(key)
            elif code in SURVIVED:
                result[module]["survived"].append(key)
            else:  # timeouts and crashes: a mutant that broke the run is caught
                result[module]["killed"].append(key)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=90.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    parser.add_argument("--no-run", action="store_true", help="score the last run only")
    args = parser.parse_args()
    env = {**os.environ, "DEFIAGENT_TOOLCHAIN_DIR": str(ROOT / "scripts" / "toolchain")}
    if not args.no_run:
        run = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.workers)]
        done = subprocess.run(run, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            print(f"mutmut failed (exit {done.returncode}); run it by hand to see why")
            return 3
    modules = score()
    if not modules:
        print("no mutation results: run without --no-run")
        return 3
    failed = False
    total_killed = total_counted = 0
    print(f"{'module':58} {'killed':>7} {'survived':>8} {'message':>7} {'score':>7}")
    for module, groups in sorted(modules.items()):
        killed, survived = len(groups["killed"]), len(groups["survived"])
        counted = killed + survived
        pct = 100.0 * killed / counted if counted else 100.0
        failed |= pct < args.threshold
        total_killed += killed
        total_counted += counted
        mark = "" if pct >= args.threshold else "  < threshold"
        print(f"{module:58} {killed:7} {survived:8} {len(groups['message']):7} {pct:6.1f}%{mark}")
        if args.survivors:
            for key in groups["survived"]:
                print(f"    survived: {key}")
    overall = 100.0 * total_killed / total_counted if total_counted else 100.0
    print(f"{'all':58} {total_killed:7} {total_counted - total_killed:8} {'':7} {overall:6.1f}%")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
