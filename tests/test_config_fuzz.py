"""Generated configs (issue 14): the loader, the JSON schema and the stages agree on every value.

* every float field refuses .inf/.nan; every integer and boolean field refuses the wrong JSON type
  (``seed: '0'``, ``seed: true``) exactly as the schema does; seeds stay in numpy's 32-bit range;
* random values at random keys: whatever the loader accepts the schema accepts, and it means the value
  given; whatever the schema accepts and the loader refuses is one of the model's own rules (a
  ``Value error`` line or a non-finite float), never a type the two read differently;
* cross-field rules live in the model: a split that leaves nothing to train on, unknown or repeated
  elements in ``atom_decoder``;
* YAML files that are not configs (bytes that are not UTF-8, deep nesting, duplicate keys, an empty
  file, alias bombs, random text) are one ConfigError naming the file, never another exception;
* a bad key in one of several merged files names that file.
"""

from __future__ import annotations

import math
import re

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from elign.config import SEED_MAX, ConfigError, ElignConfig, json_schema, load_config, validate_config
from elign.config_rules import semantic_problems
from elign.elements import SYMBOLS

SCHEMA = json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _leaves(node: dict, path: tuple = ()) -> list[tuple[tuple, set]]:
    """(key path, JSON types allowed) of every leaf of the schema."""
    out = []
    for name, prop in node.get("properties", {}).items():
        ref = prop.get("$ref") or (prop.get("allOf") or [{}])[0].get("$ref")
        if ref:
            out += _leaves(SCHEMA["$defs"][ref.split("/")[-1]], path + (name,))
            continue
        options = prop.get("anyOf", [prop])
        out.append((path + (name,), {o.get("type", "enum" if "enum" in o or "const" in o else "?") for o in options}))
    return out


LEAVES = _leaves(SCHEMA)
FLOATS = [p for p, types in LEAVES if "number" in types]
INTS = [p for p, types in LEAVES if "integer" in types and "number" not in types]
BOOLS = [p for p, types in LEAVES if types == {"boolean"} or types == {"boolean", "null"}]


def nested(path: tuple, value) -> dict:
    out = value
    for key in reversed(path):
        out = {key: out}
    return out


def value_at(config: ElignConfig, path: tuple):
    node = config.model_dump(mode="json")
    for key in path:
        node = node[key]
    return node


def test_leaf_families_are_found():
    assert len(FLOATS) > 20 and len(INTS) > 20 and len(BOOLS) > 5 and ("seed",) in INTS


@given(path=st.sampled_from(FLOATS), value=st.sampled_from([math.inf, -math.inf, math.nan]))
def test_non_finite_floats_are_refused(path, value):
    with pytest.raises(ConfigError, match=rf"{'.'.join(path)}: Input should be a finite number"):
        validate_config(nested(path, value))


WRONG_FOR_INT = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6).map(str),
    st.just("1e3"),
    st.floats(-1e6, 1e6).filter(lambda f: f != int(f)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=1),
)
WRONG_FOR_BOOL = st.one_of(st.integers(0, 1), st.sampled_from(["true", "yes", "on", "1", "True"]), st.floats(0, 1))


@given(path=st.sampled_from(INTS), value=WRONG_FOR_INT)
def test_integer_fields_refuse_other_json_types(path, value):
    if path == ("finetune", "sizes") or path == ("sample", "sizes"):
        value = value if not isinstance(value, list) else [True]  # a list of ints is allowed there
    with pytest.raises(ConfigError, match=rf"  {re.escape('.'.join(path))}[^:]*: "):
        validate_config(nested(path, value))
    assert not VALIDATOR.is_valid(nested(path, value))


@given(path=st.sampled_from(BOOLS), value=WRONG_FOR_BOOL)
def test_boolean_fields_refuse_other_json_types(path, value):
    with pytest.raises(ConfigError, match=rf"  {re.escape('.'.join(path))}: "):
        validate_config(nested(path, value))
    assert not VALIDATOR.is_valid(nested(path, value))


@given(seed=st.one_of(st.integers(-(2**70), -1), st.integers(SEED_MAX + 1, 2**70), st.integers(0, SEED_MAX)))
def test_seed_range(seed):
    if 0 <= seed <= SEED_MAX:
        assert validate_config({"seed": seed}).seed == seed
    else:
        with pytest.raises(ConfigError, match="seed: "):
            validate_config({"seed": seed})


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from(["histogram", "cpu", "qm9pack", "raise", "H", "0", "1e-4", "b3lypg", "float32"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=2)),
    max_leaves=4,
)
LEAF_PATHS = [p for p, _ in LEAVES]


@given(changes=st.lists(st.tuples(st.sampled_from(LEAF_PATHS), json_values), min_size=1, max_size=3))
def test_loader_and_schema_agree(fuzz_dir, changes):
    data: dict = {}
    for path, value in changes:
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    path = fuzz_dir / "a.yaml"
    path.write_text(yaml.safe_dump(data))
    schema_ok = VALIDATOR.is_valid(yaml.safe_load(path.read_text()))
    try:
        config = load_config(path)
    except ConfigError as exc:
        msg = str(exc)
        assert "Traceback" not in msg and str(path) in msg
        if schema_ok:  # only the model's own rules may refuse what the schema allows
            problems = msg.splitlines()[1:]
            assert problems and all(any(r in p for r in model_rules(data)) for p in problems), msg
        return
    assert schema_ok, f"the loader accepted what the schema refuses: {data}"
    for key_path, value in changes:
        if value_at_path(data, key_path) is value:  # not overwritten by a later change
            assert value_at(config, key_path) == value


def model_rules(data: dict) -> list[str]:
    """What the model's own rules may say of ``data``: a field validator's "Value error", a non-finite float,
    a bound of elign.config_bounds, and each message of the semantic rules (elign.config_rules) on it."""
    said = ["Value error", "finite number", "beyond the bound"]
    try:
        config = ElignConfig.model_validate(data)
    except ValidationError:
        return said
    return said + [message for _, message in semantic_problems(config)]


def value_at_path(data: dict, path: tuple):
    for key in path:
        data = data[key]
    return data


@given(valid=st.floats(0, 0.999), test=st.floats(0, 0.999), section=st.sampled_from(["files", "geom_drugs"]))
def test_split_fractions_must_leave_training_data(valid, test, section):
    data = {"data": {section: {"valid_fraction": valid, "test_fraction": test}}}
    if valid + test < 1:
        assert getattr(validate_config(data).data, section).valid_fraction == valid
    else:
        with pytest.raises(ConfigError, match="leaves no molecules to train on"):
            validate_config(data)
        assert VALIDATOR.is_valid(data)  # a rule the schema cannot say: the model says it


@given(
    decoder=st.lists(
        st.one_of(st.sampled_from(SYMBOLS), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz", min_size=1, max_size=3)),
        max_size=6,
    )
)
def test_atom_decoder_elements(decoder):
    known = {s.lower() for s in SYMBOLS}
    ok = decoder and all(s.lower() in known for s in decoder) and len({s.lower() for s in decoder}) == len(decoder)
    if ok:  # with QM9's elements, which the default data (qm9pack) keeps (issue 29)
        decoder = decoder + [s for s in ("H", "C", "N", "O", "F") if s.lower() not in {d.lower() for d in decoder}]
        data = {"pretrain": {"atom_decoder": decoder}, "dft": {"basis": "def2-svp"}}  # H-Rn but Ce-Lu
        if any(z > 86 or 58 <= z <= 71 for z in (SYMBOLS.index(s.capitalize()) + 1 for s in decoder)):
            with pytest.raises(ConfigError, match="dft.basis: 'def2-svp': PySCF's basis 'def2-svp' has no functions"):
                validate_config(data)
        else:
            assert validate_config(data).pretrain.atom_decoder == decoder
    else:
        with pytest.raises(ConfigError, match="pretrain.atom_decoder"):
            validate_config({"pretrain": {"atom_decoder": decoder}})


yaml_damage = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.integers(33, 400).map(lambda d: ("data: " + "{a: " * d + "1" + "}" * d).encode()),
    st.integers(33, 400).map(lambda d: ("data: " + "[" * d + "]" * d).encode()),
    st.sampled_from(
        [
            b"",
            b"# only a comment\n",
            b"seed: 1\nseed: 2\n",
            b"data:\n  source: files\n  source: qm9pack\n",
            b"- a\n- b\n",
            b"just text",
            b"\xff\xfeseed: 1",
            b"seed: 1\n\xc3\x28\n",
            b"seed: !!python/none x",
            b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        ]
    ),
)


@given(raw=yaml_damage)
def test_any_file_is_a_config_or_one_config_error(fuzz_dir, raw):
    path = fuzz_dir / "config.yaml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        msg = str(exc)
        assert str(path) in msg and "Traceback" not in msg
        assert len(msg) < 4000, "one readable message, not a dump of the input"


def test_empty_file_is_no_override_and_duplicate_keys_are_errors(fuzz_dir):
    for raw in (b"", b"# only a comment\n", b"\n\n"):  # an experiment without overrides (issue 29)
        (fuzz_dir / "e.yaml").write_bytes(raw)
        assert load_config(fuzz_dir / "e.yaml") == load_config()
    for raw, what in (
        (b"seed: 1\nseed: 2\n", "duplicate key 'seed'"),
        (("data: " + "[" * 5000 + "]" * 5000).encode(), "nested too deeply"),
    ):
        path = fuzz_dir / "c.yaml"
        path.write_bytes(raw)
        with pytest.raises(ConfigError, match=what):
            load_config(path)


@given(n_files=st.integers(1, 3), data=st.data())
def test_bad_key_names_the_file_it_came_from(fuzz_dir, n_files, data):
    bad = data.draw(st.integers(0, n_files - 1))
    path, _ = data.draw(st.sampled_from(LEAVES))
    paths = []
    for i in range(n_files):
        content = {"seed": i}
        if i == bad:
            content = nested(path[:-1] + (path[-1] + "_typo",), 1)
        paths.append(fuzz_dir / f"layer{i}.yaml")
        paths[-1].write_text(yaml.safe_dump(content))
    with pytest.raises(ConfigError) as exc:
        load_config(*paths)
    assert "unknown key (allowed here: " in str(exc.value) and f"[in {paths[bad]}]" in str(exc.value)
