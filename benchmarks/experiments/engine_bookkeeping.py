"""Experiment: the engine's bookkeeping done once instead of once per lemma.

Profiling the derive stage of the K-layer chain (``python -m benchmarks`` shows it) finds
three helpers whose cost grows with the number of definitions on *every* call, while the
number of calls grows with K as well:

1. ``blocks.extend(b for b in lemma_blocks if b not in blocks)`` in
   ``Engine._derive_parts``: a linear search of the block list with dataclass equality
   (titles such as "Chain rule" repeat, so it compares whole terms), per lemma block;
2. ``Engine._leads_to`` -> ``_direct_users``: a scan of every definition per step of an
   unmemoised recursion;
3. ``Engine._names_on_paths``: every index name of every definition, recomputed per call of
   ``_fresh_indices``.

This replaces, at run time only, (1) block equality by identity (lemma blocks are shared
objects from ``Engine._lemmas``, so the same block is the same object), and (2)/(3) by
per-engine memos.  It prints derive-only CPU time before and after, and checks that every
step and every generated lambda is unchanged on all shipped files and on the chains.
"""
from __future__ import annotations

import time

import indexcalc.derivation as derivation
import indexcalc.engine as engine
from indexcalc.parser import parse_text
from indexcalc.pipeline import run

from ..problems import dense_tanh_chain, seed_files

Engine = engine.Engine
ORIGINAL = {name: getattr(Engine, name)
            for name in ("_leads_to", "_direct_users", "_names_on_paths")}
ORIGINAL_EQ, ORIGINAL_HASH = derivation.Block.__eq__, derivation.Block.__hash__


def _memo(engine_: Engine) -> dict:
    return engine_.__dict__.setdefault("_bench_memo", {})


def leads_to(self, name: str, of: str) -> bool:
    memo = _memo(self)
    key = ("leads", name, of)
    if key not in memo:
        memo[key] = name == of or any(self._leads_to(c, of) for c in self._direct_users(name))
    return memo[key]


def direct_users(self, name: str) -> list[str]:
    memo = _memo(self)
    if ("users", name) not in memo:
        memo[("users", name)] = ORIGINAL["_direct_users"](self, name)
    return memo[("users", name)]


def names_on_paths(self) -> set[str]:
    memo = _memo(self)
    if "names" not in memo:
        memo["names"] = ORIGINAL["_names_on_paths"](self)
    return set(memo["names"])


def use(patched: bool) -> None:
    if patched:
        Engine._leads_to, Engine._direct_users = leads_to, direct_users
        Engine._names_on_paths = names_on_paths
        derivation.Block.__eq__ = lambda a, b: a is b
        derivation.Block.__hash__ = object.__hash__
    else:
        for name, fn in ORIGINAL.items():
            setattr(Engine, name, fn)
        derivation.Block.__eq__, derivation.Block.__hash__ = ORIGINAL_EQ, ORIGINAL_HASH


def output(text: str):
    return [(r.numpy.source, [(b.title, [(s.rule, s.after) for s in b.steps]) for b in r.blocks])
            for r in run(parse_text(text)).results]


def derive_cpu_seconds(text: str, repeats: int = 3) -> float:
    problem = parse_text(text)
    best = float("inf")
    for _ in range(repeats):
        e = Engine(problem)
        start = time.process_time()
        for goal in problem.goals:
            e.derive(goal)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in seed_files()}
    texts.update({f"chain K={k}": dense_tanh_chain(k) for k in (2, 8, 32)})
    differ = []
    for name, text in texts.items():
        use(False)
        before = output(text)
        use(True)
        if output(text) != before:
            differ.append(name)
    use(False)
    print(f"unchanged steps, blocks and code on {len(texts) - len(differ)}/{len(texts)} files"
          + (f"; differ: {', '.join(differ)}" if differ else ""))
    for k in (8, 16, 32, 48):
        text = dense_tanh_chain(k)
        use(False)
        before = derive_cpu_seconds(text)
        use(True)
        after = derive_cpu_seconds(text)
        use(False)
        print(f"chain K={k:2d}: derive {before * 1000:6.0f} ms -> {after * 1000:6.0f} ms "
              f"({before / after:.2f}x)")


if __name__ == "__main__":
    main()
