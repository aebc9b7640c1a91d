"""CTGAN's data transformer (Xu et al. 2019), numpy only: it runs in the service too.

Continuous columns get mode-specific normalisation: a value ``v`` of a column whose
(optionally ``log1p``-transformed) values were fitted with a Gaussian mixture is encoded as
``alpha = (v - mu_k) / (4 sigma_k)`` clipped to [-1, 1] followed by the one-hot of its most
likely mode ``k``. Discrete columns are one-hot. The conditional vector is the concatenation
of every discrete column's one-hot block; an all-zero block leaves that column free.

Decoding always applies the column constraints (counts: non-negative integers; durations,
amounts: >= 0; rates: [0, 1]; every value within the observed training range), so any finite
network output becomes a valid row. Cross-column rules that hold on every training row
(`Rule`, found by `derive_rules`: no pages of a type means no time on that type; a value that
is zero outside some categories) are enforced after decoding and after conditions are applied.
The fitted state is a versioned JSON document (``to_dict``/``from_dict``); fitting itself lives
with the training code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

CONTINUOUS_KINDS = ("count", "duration", "amount", "rate", "continuous")
DISCRETE_KINDS = ("categorical", "boolean")
TRANSFORMS = ("none", "log1p")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class ColumnSpec:
    """One column's fitted encoding.

    Attributes:
        name: Column name.
        kind: One of ``CONTINUOUS_KINDS`` or ``DISCRETE_KINDS``.
        transform: ``"log1p"`` or ``"none"``, applied before the mixture (continuous only).
        means, stds, weights: The modes, in the transformed space. A std of 0 marks an
            atom: a value that many rows share exactly (e.g. a duration of 0), encoded as
            its own mode with alpha 0 and decoded back exactly.
        min, max: Observed range of the raw values (continuous only).
        categories: Vocabulary as typed scalars (str, int or bool; discrete only).
        frequencies: Share of training rows per category.
    """

    name: str
    kind: str
    transform: str = "none"
    means: tuple[float, ...] = ()
    stds: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    min: float = 0.0
    max: float = 0.0
    categories: tuple[Any, ...] = ()
    frequencies: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.kind in DISCRETE_KINDS

    @property
    def width(self) -> int:
        """Columns of the encoding: 1 alpha + one per mode, or one per category."""
        return len(self.categories) if self.discrete else 1 + len(self.means)

    def validate(self) -> None:
        """Raise ValueError if the spec is inconsistent."""
        where = f"column {self.name!r}"
        if self.kind in DISCRETE_KINDS:
            if not self.categories or len(set(map(_key, self.categories))) != len(self.categories):
                raise ValueError(f"{where}: categories must be non-empty and unique")
            if len(self.frequencies) != len(self.categories):
                raise ValueError(f"{where}: need one frequency per category")
            if len({type(c) for c in self.categories}) != 1:
                raise ValueError(f"{where}: categories must all have one type")
        elif self.kind in CONTINUOUS_KINDS:
            if self.transform not in TRANSFORMS:
                raise ValueError(f"{where}: transform must be one of {TRANSFORMS}")
            if not self.means or not len(self.means) == len(self.stds) == len(self.weights):
                raise ValueError(f"{where}: needs >= 1 mode with a mean, std and weight each")
            if min(self.stds) < 0 or min(self.weights) <= 0 or not self.min <= self.max:
                raise ValueError(f"{where}: stds must be >= 0, weights > 0 and min <= max")
        else:
            raise ValueError(f"{where}: unknown kind {self.kind!r}")


RULE_KINDS = ("zero_if_zero", "zero_unless")


@dataclass(frozen=True)
class Rule:
    """A cross-column rule that every training row obeys; decoding enforces it.

    Attributes:
        kind: ``"zero_if_zero"``: ``column`` is 0 wherever ``source`` is 0 (no pages of a type,
            no time on it). ``"zero_unless"``: ``column`` is 0 unless ``source`` (a discrete
            column) is one of ``categories``.
        column: The continuous column the rule sets to 0.
        source: The column the rule reads.
        categories: Where ``column`` may be non-zero (``zero_unless`` only).
    """

    kind: str
    column: str
    source: str
    categories: tuple[Any, ...] = ()

    def zeroed(self, rows: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean mask of the rows where the rule requires ``column == 0``."""
        src = np.asarray(rows[self.source])
        if self.kind == "zero_if_zero":
            return src == 0
        allowed = {_key(c) for c in self.categories}
        return np.array([_key(v) not in allowed for v in src.tolist()], dtype=bool)

    def violations(self, rows: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean mask of the rows that break the rule."""
        return self.zeroed(rows) & (np.asarray(rows[self.column]) != 0)

    def enforce(self, rows: dict[str, np.ndarray]) -> None:
        """Set ``column`` to 0 where the rule requires it (in place, keeping the dtype)."""
        col = np.array(rows[self.column], copy=True)
        col[self.zeroed(rows)] = 0
        rows[self.column] = col

    def describe(self) -> str:
        if self.kind == "zero_if_zero":
            return f"{self.column} is 0 when {self.source} is 0"
        return f"{self.column} is 0 unless {self.source} is one of {list(self.categories)}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "column": self.column, "source": self.source}
        if self.categories:
            d["categories"] = [_typed(c) for c in self.categories]
        return d


def derive_rules(
    columns: Mapping[str, np.ndarray],
    specs: tuple[ColumnSpec, ...],
    min_support: float = 0.002,
    min_excluded: float = 0.1,
) -> list[Rule]:
    """The rules of both kinds that hold on every row of a table.

    A rule must matter: the rows it zeroes are at least ``min_support`` of the table
    (``min_excluded`` for ``zero_unless``, so that a rare category alone does not make a rule),
    and ``column`` is non-zero in at least ``min_support`` of the rows.
    """
    n = len(next(iter(columns.values())))
    rules: list[Rule] = []
    targets = [c for c in specs if not c.discrete]
    for t in targets:
        col = np.asarray(columns[t.name], dtype=float)
        if (col != 0).mean() < min_support:
            continue
        for s in specs:
            if s.name == t.name:
                continue
            src = np.asarray(columns[s.name])
            if s.kind == "count":
                zero = src == 0
                if zero.mean() >= min_support and not col[zero].any():
                    rules.append(Rule("zero_if_zero", t.name, s.name))
            elif s.discrete:
                keys = np.array([_key(v) for v in src.tolist()], dtype=object)
                allowed = {k for k in set(keys.tolist()) if col[keys == k].any()}
                excluded = ~np.isin(keys, list(allowed))
                if excluded.sum() >= min_excluded * n:
                    cats = tuple(c for c in s.categories if _key(c) in allowed)
                    rules.append(Rule("zero_unless", t.name, s.name, cats))
    return rules


def _key(value: Any) -> Any:
    """Lookup key of a category: case-insensitive strings, bools and ints as themselves."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    return str(value).strip().lower()


def _typed(value: Any) -> Any:
    """A numpy scalar as the matching Python (JSON) scalar."""
    return value.item() if isinstance(value, np.generic) else value


class TabularTransformer:
    """Encode table columns to network rows and decode them back (see the module docstring).

    Args:
        columns: The column specs, in table order.
        cooccurrence: ``{(a, b): {(i, j), ...}}`` for discrete columns ``a`` before ``b``:
            the category-index pairs seen together in the training data.
    """

    FORMAT = "ecomgan.tabular/1"

    def __init__(
        self,
        columns: tuple[ColumnSpec, ...],
        cooccurrence: Mapping[tuple[str, str], set[tuple[int, int]]] | None = None,
        rules: tuple[Rule, ...] = (),
    ) -> None:
        self.columns = tuple(columns)
        for c in self.columns:
            c.validate()
        self._by_name = {c.name: c for c in self.columns}
        if len(self._by_name) != len(self.columns):
            raise ValueError("column names must be unique")
        self.discrete_names = tuple(c.name for c in self.columns if c.discrete)
        self.continuous_names = tuple(c.name for c in self.columns if not c.discrete)
        self.offsets, self.cond_offsets = {}, {}
        x, cond = 0, 0
        for c in self.columns:
            self.offsets[c.name] = x
            x += c.width
            if c.discrete:
                self.cond_offsets[c.name] = cond
                cond += c.width
        self.output_dim, self.cond_dim = x, cond
        self._lookup = {
            c.name: {_key(v): i for i, v in enumerate(c.categories)} for c in self.columns
        }
        self.cooccurrence = {k: set(v) for k, v in (cooccurrence or {}).items()}
        self.rules = tuple(rules)
        for r in self.rules:
            if r.kind not in RULE_KINDS or r.column not in self._by_name or (
                r.source not in self._by_name
            ):
                raise ValueError(f"rule {r} names an unknown kind or column")

    def output_info(self) -> list[tuple[int, int, str]]:
        """``(start, end, activation)`` spans of an encoded row: ``"tanh"`` or ``"softmax"``."""
        spans = []
        for c in self.columns:
            o = self.offsets[c.name]
            if c.discrete:
                spans.append((o, o + c.width, "softmax"))
            else:
                spans += [(o, o + 1, "tanh"), (o + 1, o + c.width, "softmax")]
        return spans

    def codes(self, column: str, values: np.ndarray) -> np.ndarray:
        """Category indices (int64) of a discrete column's values.

        Raises:
            ValueError: Naming the first value outside the vocabulary.
        """
        lookup = self._lookup[self._discrete(column).name]
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(np.asarray(values).tolist()):
            k = lookup.get(_key(v))
            if k is None:
                k = self.category_index(column, v)  # raises the vocabulary error
            out[i] = k
        return out

    def encode(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encode a table (column name -> values) into float32 (n, output_dim), deterministically.

        Raises:
            ValueError: On a missing column, unequal lengths or an unknown category.
        """
        missing = [c.name for c in self.columns if c.name not in columns]
        if missing:
            raise ValueError(
                f"missing columns {missing}; expected {[c.name for c in self.columns]}"
            )
        n = len(columns[self.columns[0].name])
        out = np.zeros((n, self.output_dim), dtype=np.float32)
        for c in self.columns:
            values, o = np.asarray(columns[c.name]), self.offsets[c.name]
            if len(values) != n:
                raise ValueError(f"column {c.name} has {len(values)} values, expected {n}")
            if c.discrete:
                out[np.arange(n), o + self.codes(c.name, values)] = 1.0
                continue
            v = values.astype(np.float64)
            if c.transform == "log1p":
                v = np.log1p(np.maximum(v, 0.0))
            mu, sd, w = (np.asarray(a) for a in (c.means, c.stds, c.weights))
            atom = sd == 0
            safe = np.where(atom, 1.0, sd)
            z = (v[:, None] - mu) / safe  # (n, K)
            logp = np.log(w) - np.log(safe) - 0.5 * z * z  # log posterior, up to a constant
            if atom.any():
                hit = atom & np.isclose(v[:, None], mu, rtol=0.0, atol=1e-9)
                # Atoms take their exact values; other values the Gaussian modes, or the
                # nearest atom when the column has only atoms.
                fallback = -np.abs(z) if atom.all() else np.where(atom, -np.inf, logp)
                logp = np.where(hit, np.inf, fallback)
            mode = np.argmax(logp, axis=1)
            out[:, o] = np.clip((v - mu[mode]) / (4.0 * safe[mode]), -1.0, 1.0) * ~atom[mode]
            out[np.arange(n), o + 1 + mode] = 1.0
        return out

    def decode(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Rows from encoded (or raw network) floats (n, output_dim), constraints applied."""
        x = np.nan_to_num(np.asarray(x, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != self.output_dim:
            raise ValueError(f"expected an array (n, {self.output_dim}), got {x.shape}")
        rows: dict[str, np.ndarray] = {}
        for c in self.columns:
            o = self.offsets[c.name]
            if c.discrete:
                rows[c.name] = np.asarray(c.categories)[np.argmax(x[:, o : o + c.width], axis=1)]
                continue
            mode = np.argmax(x[:, o + 1 : o + c.width], axis=1)
            alpha = np.clip(x[:, o], -1.0, 1.0)
            v = alpha * 4.0 * np.asarray(c.stds)[mode] + np.asarray(c.means)[mode]
            if c.transform == "log1p":
                v = np.expm1(np.minimum(v, 700.0))
            rows[c.name] = self._constrain(c, v)
        self.apply_rules(rows)
        return rows

    def apply_rules(self, rows: dict[str, np.ndarray]) -> None:
        """Enforce every cross-column rule on decoded rows (in place)."""
        for rule in self.rules:
            rule.enforce(rows)

    def rule_violations(self, rows: Mapping[str, np.ndarray]) -> dict[str, int]:
        """Rule description -> number of rows breaking it (evaluation and tests)."""
        return {r.describe(): int(r.violations(rows).sum()) for r in self.rules}

    @staticmethod
    def _constrain(c: ColumnSpec, v: np.ndarray) -> np.ndarray:
        v = np.clip(v, c.min, c.max)
        if c.kind == "rate":
            return np.clip(v, 0.0, 1.0)
        if c.kind in ("duration", "amount"):
            return np.maximum(v, 0.0)
        if c.kind == "count":
            return np.maximum(np.rint(v), 0).astype(np.int64)
        return v

    def _discrete(self, column: str) -> ColumnSpec:
        allowed = ", ".join(self.discrete_names)
        spec = self._by_name.get(column)
        if spec is None:
            raise ValueError(f"unknown column {column!r}; conditions apply to: {allowed}")
        if not spec.discrete:
            raise ValueError(
                f"{column} is a continuous column ({spec.kind}): conditions apply to "
                f"categorical columns only: {allowed}"
            )
        return spec

    def category_index(self, column: str, value: Any) -> int:
        """Index of ``value`` in a discrete column's vocabulary.

        Accepts the typed value or its string form, case-insensitively: ``"Nov"``/``"nov"``,
        ``2``/``"2"``, ``True``/``"true"``/``"TRUE"``.

        Raises:
            ValueError: On an unknown or continuous column, or a value outside the vocabulary.
        """
        spec = self._discrete(column)
        lookup, key = self._lookup[column], _key(value)
        kind = type(spec.categories[0])
        if isinstance(key, str) and kind is bool:
            key = _BOOLS.get(key, key)
        elif isinstance(key, str) and kind is int and key.lstrip("-").isdigit():
            key = int(key)
        elif isinstance(key, bool) and kind is not bool:
            key = None  # True must not match the integer category 1
        if key not in lookup:
            allowed = ", ".join(str(v) for v in spec.categories)
            raise ValueError(f"unknown value {value!r} for {column}; allowed: {allowed}")
        return lookup[key]

    def _check_conditions(self, conditions: Mapping[str, int]) -> None:
        for name, idx in conditions.items():
            spec = self._discrete(name)
            if not (isinstance(idx, int | np.integer) and 0 <= idx < spec.width):
                raise ValueError(f"condition on {name} must be an index in [0, {spec.width})")

    def cond_vector(self, conditions: Mapping[str, int], n: int) -> np.ndarray:
        """float32 (n, cond_dim): one-hot blocks of the conditioned columns, zeros elsewhere."""
        self._check_conditions(conditions)
        cond = np.zeros((n, self.cond_dim), dtype=np.float32)
        for name, idx in conditions.items():
            cond[:, self.cond_offsets[name] + int(idx)] = 1.0
        return cond

    def apply_conditions(self, rows: dict[str, np.ndarray], conditions: Mapping[str, int]) -> None:
        """Set each conditioned column of decoded ``rows`` to its value, in place; the rules
        are enforced again, since a condition may change what they require."""
        self._check_conditions(conditions)
        for name, idx in conditions.items():
            n = len(rows[name])
            rows[name] = np.full(n, np.asarray(self._by_name[name].categories)[int(idx)])
        self.apply_rules(rows)

    def cooccurs(self, conditions: Mapping[str, int]) -> bool:
        """Whether training rows had every conditioned value, and every pair of them together."""
        self._check_conditions(conditions)
        for name, idx in conditions.items():
            if self._by_name[name].frequencies[int(idx)] <= 0:
                return False
        order = {n: i for i, n in enumerate(self.discrete_names)}
        items = sorted(conditions.items(), key=lambda kv: order[kv[0]])
        for (a, i), (b, j) in combinations(items, 2):
            if (int(i), int(j)) not in self.cooccurrence.get((a, b), set()):
                return False
        return True

    @staticmethod
    def pair_cooccurrence(codes: Mapping[str, np.ndarray]) -> dict[tuple[str, str], set]:
        """The seen index pairs of every two discrete columns, from their codes in table order."""
        names = list(codes)
        return {
            (a, b): set(zip(codes[a].tolist(), codes[b].tolist(), strict=True))
            for a, b in combinations(names, 2)
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable document; ``from_dict`` reads it back."""
        cols = []
        for c in self.columns:
            d: dict[str, Any] = {"name": c.name, "kind": c.kind}
            if c.discrete:
                d["categories"] = [_typed(v) for v in c.categories]
                d["frequencies"] = [float(f) for f in c.frequencies]
            else:
                d["transform"] = c.transform
                d["modes"] = {
                    "means": [float(m) for m in c.means],
                    "stds": [float(s) for s in c.stds],
                    "weights": [float(w) for w in c.weights],
                }
                d["min"], d["max"] = float(c.min), float(c.max)
            cols.append(d)
        pairs = [
            {"columns": [a, b], "pairs": sorted([int(i), int(j)] for i, j in seen)}
            for (a, b), seen in self.cooccurrence.items()
        ]
        doc = {"format": self.FORMAT, "columns": cols, "cooccurrence": pairs}
        if self.rules:  # optional member: documents without it have no rules
            doc["rules"] = [r.to_dict() for r in self.rules]
        return doc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TabularTransformer:
        """Rebuild a transformer from ``to_dict``'s document.

        Raises:
            ValueError: If the document has another format or is malformed.
        """
        if not isinstance(d, Mapping) or d.get("format") != cls.FORMAT:
            got = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(f"not a {cls.FORMAT} document (format {got!r})")
        try:
            specs = []
            for c in d["columns"]:
                if c["kind"] in DISCRETE_KINDS:
                    specs.append(ColumnSpec(c["name"], c["kind"], categories=tuple(c["categories"]),
                                            frequencies=tuple(c["frequencies"])))  # fmt: skip
                else:
                    m = c["modes"]
                    specs.append(ColumnSpec(
                        c["name"], c["kind"], c.get("transform", "none"), tuple(m["means"]),
                        tuple(m["stds"]), tuple(m["weights"]), float(c["min"]), float(c["max"]),
                    ))  # fmt: skip
            co = {
                tuple(p["columns"]): {(int(i), int(j)) for i, j in p["pairs"]}
                for p in d.get("cooccurrence", [])
            }
            rules = tuple(
                Rule(r["kind"], r["column"], r["source"], tuple(r.get("categories", ())))
                for r in d.get("rules", [])
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed {cls.FORMAT} document: {e!r}") from e
        return cls(tuple(specs), co, rules)
