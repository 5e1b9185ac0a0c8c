"""The derivation engine: from a goal to index-form results with recorded steps.

The strategy is the documents' one.  For ``dL/dW_ij`` it writes the chain rule over the
definitions that use ``W`` directly (``dL/dW_ij = sum_{s,n} dL/dY_sn dY_sn/dW_ij``), derives
each local derivative ``dY_sn/dW_ij`` in its own block (expand the definition,
differentiate to deltas, contract), derives each gradient ``dL/dY`` that is not an upstream
gradient the same way (recursively, once per tensor), substitutes them, and simplifies.

Rules live in ``rules.RULES``; this module only decides what to derive, applies the table
(one recorded step per rule application) and checks after every step that the free indices
did not change.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import limits, naming
from ..derivation import Block, Step
from ..problem import Goal, InputError, Problem
from .rules import (
    CHAIN_RULE, EXPAND_DEFINITION, NO_DEPENDENCE, RULES, SUBSTITUTE, Context, Rule, instantiate,
)
from ..terms import (
    Deriv, Grad, Index, Sum, Tensor, Term, add, make_sum, map_children, mul, rename_indices,
    replace, unshadow, ZERO,
)

#: A derived gradient larger than this many nodes is carried as the symbol dL/dY into the
#: next chain rule and written out once at the end: each layer of a deep network is then
#: derived on a small expression (linear, not quadratic, time in the depth).
INLINE_LIMIT = 40
#: Written out, those gradients may repeat: when the result would grow past this many times
#: the size of its parts (each layer using its input twice doubles it), it names them
#: instead, as reverse mode does (linear, not exponential, in the depth).
NAMED_GROWTH = 2

#: No real derivation comes near this many steps in one block; a runaway rewrite stops here.
#: Time and memory are the run's budget (``limits``), which every block ticks.
MAX_STEPS_PER_BLOCK = 400


class DerivationError(Exception):
    """A rewrite that did not finish, or an invariant that broke: a bug, not bad input."""


@dataclass(frozen=True)
class IndexResult:
    """The index form of one goal and the blocks that derive it."""

    goal: Goal
    target: Term
    index: Term
    blocks: tuple[Block, ...]
    #: gradients the index form names instead of writing them out (``df_dy3[j]``), each
    #: (array name, its indices, its derived form), those it uses first: a chain whose
    #: layers each use their input twice would double in size with every layer inlined
    intermediates: tuple[tuple[str, tuple[Index, ...], Term], ...] = ()


@dataclass
class Engine:
    problem: Problem
    max_steps: int = MAX_STEPS_PER_BLOCK
    _lemmas: dict = field(default_factory=dict)
    _deferred: dict = field(default_factory=dict)  # (of, Y) -> (dL/dY at own indices, own)
    _inlined: dict = field(default_factory=dict)
    _index_names: set | None = None
    _rules: tuple | None = None
    #: local derivatives that equal the total ones, for a second derivative to reuse
    _known: list = field(default_factory=list)

    # -- public ------------------------------------------------------------------------
    def derive(self, goal: Goal) -> IndexResult:
        if goal.kind == "jacobian":  # the definition's own indices, as the documents do
            of_term = Tensor(goal.of, self.problem.definitions[goal.of].indices)
        else:
            of_term = Tensor(goal.of, ())
        wrt_indices = self._fresh_indices(goal.wrt, avoid={i.name for i in of_term.indices})
        result, blocks = self.total_derivative(of_term, goal.wrt, wrt_indices)
        target = self._target(of_term, goal.wrt, wrt_indices)
        intermediates: tuple = ()
        named = self._intermediates(result)
        if named:
            parts = result.size + sum(term.size for _, _, term in named)
            if goal.kind != "hessian" and self._inlined_size(result, {}) > NAMED_GROWTH * parts:
                intermediates = named  # reverse mode: each gradient once, by name
            else:
                inlined = self._inline_deferred(result)
                title = target_name(of_term, goal.wrt)
                blocks = blocks + [Block(title, target, result, (self.step(
                    SUBSTITUTE, result, inlined, title, "put in the gradients derived above"),))]
                result = inlined
        if goal.kind == "hessian":
            result, more = self._second_derivative(goal, result, wrt_indices)
            blocks = blocks + more
            target = Deriv(Deriv(of_term, Tensor(goal.wrt, wrt_indices)),
                           Tensor(goal.wrt, self._second_indices(goal.wrt, wrt_indices)))
        return IndexResult(goal, target, result, tuple(blocks), intermediates)

    # -- the chain rule over definitions -----------------------------------------------
    def total_derivative(self, of_term: Tensor, wrt: str, wrt_indices: tuple[Index, ...]):
        """d of_term / d wrt[wrt_indices] as (term, blocks), derived once per tensor."""
        key = (of_term, wrt, wrt_indices)
        if key not in self._lemmas:
            self._lemmas[key] = self._derive_total(of_term, wrt, wrt_indices)
        return self._lemmas[key]

    def _derive_total(self, of_term: Tensor, wrt: str, wrt_indices: tuple[Index, ...]):
        wrt_entry = Tensor(wrt, wrt_indices)
        target = self._target(of_term, wrt, wrt_indices)
        title = target_name(of_term, wrt)
        chain = self._chain_rule(of_term, wrt, wrt_indices)
        ctx = Context(self.problem)
        if isinstance(chain, Deriv) and chain.expr == of_term:
            # Only a direct dependence: differentiate the definition itself.
            block = self.run_block(title, target, chain, ctx,
                                   first=self._expand_step(chain, wrt_entry))
            return block.result, [block]
        if chain == ZERO:  # a zero gradient is a result, said so
            start = Deriv(of_term, wrt_entry)
            return chain, [Block(title, target, start, (self.step(
                NO_DEPENDENCE, start, chain, title, f"{of_term.name} does not depend on {wrt}"),))]
        if not chain.has_deriv:
            # Nothing to derive: upstream gradients (dL/dY for L = loss(Y)).
            return chain, [Block(title, target, chain, ())]

        blocks = [Block("Chain rule", target, Deriv(of_term, wrt_entry),
                        (self.step(CHAIN_RULE, Deriv(of_term, wrt_entry), chain, title,
                                   "sum over every entry of each tensor that uses " + wrt),))]
        substitutions = self._derive_parts(chain, of_term, wrt_entry, blocks)
        substituted = unshadow(replace(chain, lambda t: substitutions.get(t)))
        final = self.run_block(
            title, target, chain, ctx,
            first=self.step(SUBSTITUTE, chain, substituted, title,
                            "put the derivatives found above into the chain rule"))
        blocks.append(final)
        return final.result, blocks

    def _chain_rule(self, of_term: Tensor, wrt: str, wrt_indices) -> Term:
        """sum over the definitions C that use ``wrt``: sum_c d(of)/dC_c dC_c/d(wrt)."""
        of_def = self.problem.definitions[of_term.name]
        wrt_entry = Tensor(wrt, wrt_indices)
        taken = {i.name for i in of_term.indices} | {i.name for i in wrt_indices}
        contributions: list[Term] = []
        for consumer in self._consumers(wrt, of_term.name):
            if consumer == of_term.name:
                contributions.append(Grad(of_term.name, wrt, wrt_indices)
                                     if of_def.is_opaque_loss else Deriv(of_term, wrt_entry))
                continue
            c_entry = Tensor(consumer, self._consumer_indices(consumer, taken))
            if (of_def.is_opaque_loss and consumer in of_def.loss_args
                    and all(c == of_term.name for c in self._consumers(consumer, of_term.name))):
                # the loss takes the consumer and nothing else on the way to it does: dL/dC
                # is the upstream gradient (else it is derived: L = loss(H, C), H from C)
                upstream: Term = Grad(of_term.name, consumer, c_entry.indices)
            else:
                upstream = Deriv(of_term, c_entry)
            contributions.append(make_sum(c_entry.indices,
                                          mul(upstream, Deriv(c_entry, wrt_entry))))
        return add(*contributions)

    def _derive_parts(self, chain: Term, of_term: Tensor, wrt_entry: Tensor,
                      blocks: list[Block]) -> dict[Term, Term]:
        """Derive every derivative the chain rule left open, appending their blocks."""
        substitutions: dict[Term, Term] = {}
        listed = {id(b) for b in blocks}
        for node in chain.walk():
            if not isinstance(node, Deriv) or node in substitutions:
                continue
            if node.wrt == wrt_entry:  # a local derivative dY_sn / dW_ij
                if self.problem.definitions[node.expr.name].is_opaque_loss:
                    # dL0/dY_ij of L0 = loss(Y) is an upstream gradient
                    substitutions[node] = Grad(node.expr.name, wrt_entry.name, wrt_entry.indices)
                    continue
                local = self.local_derivative(node.expr, wrt_entry)
                blocks.append(local)
                substitutions[node] = local.result
            else:  # a gradient dL/dY_sc that is itself derived, once, at its own indices
                consumer = node.wrt
                own = self._fresh_indices(consumer.name, avoid={i.name for i in of_term.indices})
                lemma, lemma_blocks = self.total_derivative(of_term, consumer.name, own)
                for b in lemma_blocks:
                    if id(b) not in listed:
                        listed.add(id(b))
                        blocks.append(b)
                of_def = self.problem.definitions[of_term.name]
                upstream_name = of_def.is_opaque_loss and consumer.name in of_def.loss_args
                if not of_term.indices and lemma.size > INLINE_LIMIT and not upstream_name:
                    # carried as the symbol dL/dY_sc, put in once at the end (never for an
                    # argument of the loss: there that symbol is its upstream gradient, which
                    # the derived dL/dC itself contains)
                    self._deferred[(of_term.name, consumer.name)] = (lemma, own)
                    substitutions[node] = Grad(of_term.name, consumer.name, consumer.indices)
                else:
                    substitutions[node] = rename_indices(lemma, dict(zip(own, consumer.indices)))
        return substitutions

    def _inlined_size(self, term: Term, memo: dict) -> int:
        """The size ``term`` would have with every gradient carried as a symbol written out,
        counted without writing it out (that may be exponentially large)."""
        size = term.size
        for node in term.walk():
            key = (node.of, node.wrt) if isinstance(node, Grad) else None
            if key in self._deferred:
                if key not in memo:
                    memo[key] = self._inlined_size(self._deferred[key][0], memo)
                size += memo[key] - node.size
        return size

    def _intermediates(self, term: Term) -> tuple[tuple[str, tuple[Index, ...], Term], ...]:
        """The gradients carried as symbols that ``term`` uses, directly or through each
        other, those used by others first."""
        order: list[tuple[str, str]] = []

        def visit(t: Term) -> None:
            for node in t.walk():
                key = (node.of, node.wrt) if isinstance(node, Grad) else None
                if key in self._deferred and key not in order:
                    visit(self._deferred[key][0])
                    order.append(key)
        visit(term)
        return tuple((naming.gradient(*key), self._deferred[key][1], self._deferred[key][0])
                     for key in order)

    def _inline_deferred(self, term: Term) -> Term:
        """``term`` with every gradient carried as a symbol replaced by its derived form."""
        def expand(t: Term) -> Term | None:
            key = (t.of, t.wrt) if isinstance(t, Grad) else None
            if key not in self._deferred:
                return None
            if key not in self._inlined:
                lemma, own = self._deferred[key]
                self._inlined[key] = (self._inline_deferred(lemma), own)
            lemma, own = self._inlined[key]
            return rename_indices(lemma, dict(zip(own, t.indices)))

        return unshadow(replace(term, expand)) if self._deferred else term

    def local_derivative(self, entry: Tensor, wrt_entry: Tensor) -> Block:
        start = Deriv(entry, wrt_entry)
        block = self.run_block(f"Derivative of {entry.name}", start, start,
                               Context(self.problem), first=self._expand_step(start, wrt_entry))
        if self._partial_is_total(entry.name, wrt_entry.name):
            self._known.append((start, block.result))
        return block

    def _partial_is_total(self, name: str, wrt: str) -> bool:
        """Does ``name`` depend on ``wrt`` directly only, through no other definition?  Then
        its local (partial) derivative is the total one, and a second derivative may reuse
        it instead of deriving it again."""
        if self.problem.definitions[name].body is None:
            return False
        # uses(): every tensor the body mentions, inside inv(B) and det(B) too
        return not any(self.problem.is_defined(u) and wrt in self.problem.reaches(u)
                       for u in self.problem.uses(name) if u != wrt)

    def _expand_step(self, node: Deriv, wrt_entry: Tensor) -> Step:
        body = instantiate(self.problem, node.expr, avoid=wrt_entry.free)
        return self.step(EXPAND_DEFINITION, node, Deriv(body, wrt_entry),
                         f"Derivative of {node.expr.name}", f"definition of {node.expr.name}")

    def _second_derivative(self, goal: Goal, gradient: Term, wrt_indices):
        second = self._second_indices(goal.wrt, wrt_indices)
        start = Deriv(gradient, Tensor(goal.wrt, second))
        target = Deriv(Deriv(Tensor(goal.of, ()), Tensor(goal.wrt, wrt_indices)),
                       Tensor(goal.wrt, second))
        ctx = Context(self.problem, partial=False, known=tuple(self._known))
        if any(isinstance(t, Grad) for t in gradient.walk()):
            raise InputError(f"the hessian of {goal.of} needs second derivatives of an "
                             "unspecified loss, which indexcalc does not know",
                             goal.location)
        block = self.run_block("Second derivative", target, start, ctx)
        return block.result, [block]

    def _second_indices(self, wrt: str, first):
        return self._fresh_indices(wrt, avoid={i.name for i in first})

    # -- applying the rule table ---------------------------------------------------------
    def run_block(self, title: str, target: Term, start: Term, ctx: Context,
                  first: Step | None = None) -> Block:
        steps: list[Step] = []
        term = start
        if first is not None:
            steps.append(first)
            term = first.after
        rules = self._active_rules()
        for _ in range(self.max_steps):
            limits.tick()
            for rule in rules:
                new = apply_everywhere(rule, term, ctx)
                if new is not None and new != term:
                    new = unshadow(new)
                    steps.append(self.step(rule, term, new, title, free=start.free))
                    term = new
                    break
            else:
                return Block(title, target, start, tuple(steps))
        raise DerivationError(f"{title}: no result after {self.max_steps} steps")

    def _active_rules(self) -> tuple[Rule, ...]:
        """The rules that can fire in this problem, in the table's order."""
        if self._rules is None:
            self._rules = tuple(r for r in RULES if r.needs is None or r.needs(self.problem))
        return self._rules

    def step(self, rule: Rule, before: Term, after: Term, title: str,
             reason: str | None = None, free: frozenset[Index] | None = None) -> Step:
        """Record one step: every step of every block is made here, and here the engine
        checks that it introduced no free index (beyond ``free``, by default those of
        ``before``).  A step may drop one: the term model has no broadcast axes, so a value
        constant along an axis does not carry its index (dY_sn/db_i = delta_ni for every
        s), and equality would reject correct steps."""
        allowed = before.free if free is None else free
        if not after.free <= allowed:
            raise DerivationError(
                f"rule '{rule.name}' introduced free indices in {title}: "
                f"{sorted(map(str, allowed))} -> {sorted(map(str, after.free))}")
        return Step(rule.name, before, after, reason or rule.identity)

    # -- the dependency graph ------------------------------------------------------------
    def _consumers(self, tensor: str, of: str) -> list[str]:
        """Definitions that use ``tensor`` directly and lead to ``of`` (``of`` included)."""
        upstream = self.problem.reaches(of)
        return [name for name in self.problem.definitions
                if tensor in self.problem.uses(name) and (name == of or name in upstream)]

    # -- index names ---------------------------------------------------------------------
    def _fresh_indices(self, tensor: str, avoid: set[str]) -> tuple[Index, ...]:
        dims = self.problem.tensor_dims(tensor)
        taken = set(avoid) | self._names_on_paths()
        out = []
        for dim in dims:
            name = naming.fresh_index(taken)
            taken.add(name)
            out.append(Index(name, dim))
        return tuple(out)

    def _names_on_paths(self) -> set[str]:
        """Every index name the definitions use (result indices avoid them)."""
        if self._index_names is None:
            self._index_names = set()
            for d in self.problem.definitions.values():
                self._index_names.update(i.name for i in d.indices)
                if d.body is not None:
                    self._index_names.update(d.body.all_index_names())
        return self._index_names

    def _consumer_indices(self, consumer: str, taken: set[str]) -> tuple[Index, ...]:
        out = []
        used = set(taken)
        for i in self.problem.definitions[consumer].indices:
            name = i.name
            if name in used:
                name = naming.fresh_index(used, naming.CONSUMER_INDEX_NAMES)
            used.add(name)
            out.append(Index(name, i.dim))
        return tuple(out)

    def _target(self, of_term: Tensor, wrt: str, wrt_indices) -> Term:
        if not of_term.indices:
            return Grad(of_term.name, wrt, wrt_indices)
        return Deriv(of_term, Tensor(wrt, wrt_indices))


def target_name(of_term: Tensor, wrt: str) -> str:
    kind = "Derivative" if of_term.indices else "Gradient"
    return f"{kind} of {of_term.name} with respect to {wrt}"


def apply_everywhere(rule: Rule, term: Term, ctx: Context) -> Term | None:
    """Apply ``rule`` at every outermost node where it fits; None if it fits nowhere.

    A subterm where the rule fitted nowhere is marked so (terms are immutable, and a step
    leaves most of the term's nodes as they were), so the next search skips it: a
    derivation costs about its number of steps times the size of what each step changes.
    """
    changed = False
    differentiate = rule.phase == "differentiate"
    fixed_key = (None if rule.reads_bound
                 else (rule.name, id(ctx.problem), ctx.partial, None))  # the same everywhere
    apply = rule.apply

    def visit(t: Term, c: Context) -> Term:
        nonlocal changed
        if differentiate and not t.has_deriv:
            return t
        key = fixed_key or (rule.name, id(c.problem), c.partial, c.bound)
        settled = t.__dict__.get("_settled")
        if settled is None:
            settled = t.__dict__["_settled"] = set()
        elif key in settled:
            return t
        new = apply(t, c)
        if new is not None and new != t:
            changed = True
            return new
        inner = c.inside(t.indices) if isinstance(t, Sum) else c
        out = map_children(t, lambda child: visit(child, inner))
        if out is t:
            settled.add(key)
        return out

    out = visit(term, ctx)
    return out if changed else None
