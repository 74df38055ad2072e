"""Generated XYZ files (issue 14): a valid file reads as exactly what it says; a malformed one is one clear
error naming the file, the frame (record) and the line, never a shifted, truncated or wrapped molecule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elign.data.checks import MAX_ATOMS
from elign.data.errors import ErrorPolicy
from elign.data.files import read_file
from elign.elements import SYMBOLS
from elign.io.errors import DataFormatError

FORMATS = ("{!r}", "{:.4f}", "{:.6e}", "{:.10g}", "{:+.3f}", "{:.12E}")
SEPARATORS = (" ", "  ", "\t", " \t ")


@st.composite
def molecules(draw, max_atoms: int = 6):
    """(atomic numbers, positions Å float64, tokens of each atom line): atoms >= 0.8 Å apart, |x| < 50 Å."""
    n = draw(st.integers(1, max_atoms))
    cells = draw(st.lists(st.tuples(*[st.integers(-30, 30)] * 3), min_size=n, max_size=n, unique=True))
    jitter = draw(st.lists(st.floats(-0.2, 0.2), min_size=3 * n, max_size=3 * n))
    z = draw(st.lists(st.integers(1, len(SYMBOLS)), min_size=n, max_size=n))
    pos = np.array(cells, dtype=np.float64) * 1.5 + np.array(jitter).reshape(n, 3)
    lines = []
    for zi, xyz in zip(z, pos):
        fmt = draw(st.sampled_from(FORMATS))
        texts = [fmt.format(float(v)) for v in xyz]
        element = draw(st.sampled_from([SYMBOLS[zi - 1], SYMBOLS[zi - 1].upper(), str(zi)]))
        lines.append([element] + texts)
    meant = np.array([[float(t) for t in line[1:]] for line in lines])  # what the text says
    return np.array(z), meant, lines


def frame_lines(mol, comment: str, sep: str = " ", count: int | None = None) -> list[str]:
    z, _, atoms = mol
    return [str(len(z) if count is None else count), comment] + [sep.join(tokens) for tokens in atoms]


def write(fuzz_dir, lines: list[str], newline: str = "\n", prefix: bytes = b"", name: str = "frames.xyz"):
    path = fuzz_dir / name
    path.write_bytes(prefix + newline.join(lines).encode() + newline.encode())
    return path


def read(path, on_error: str = "raise", errors: ErrorPolicy | None = None):
    return read_file(path, "xyz", errors or ErrorPolicy(on_error))


def _raises_then_skips(path, clear_error, bad: int, line: int):
    """Raise mode: one clear error naming frame ``bad`` (0-based) and its line; skip mode: (table, policy)."""
    with pytest.raises(DataFormatError) as exc:
        read(path)
    clear_error(exc.value, path, record=bad + 1, line=line)
    policy = ErrorPolicy("skip")
    return read(path, errors=policy), policy


def assert_frames(table, mols, records=None) -> None:
    assert len(table) == len(mols)
    for i, (z, meant, _) in enumerate(mols):
        rec = table.molecule(i)
        np.testing.assert_array_equal(rec.atomic_numbers, z)
        np.testing.assert_array_equal(rec.positions_ang, meant.astype(np.float32))
    if records is not None and len(table):
        assert table.columns["record"].tolist() == records


comments = st.one_of(st.just(""), st.text(st.sampled_from("abc XYZ 0123456789-_.,;"), max_size=30))


@given(
    mols=st.lists(molecules(), min_size=1, max_size=4),
    comment=comments,
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    sep=st.sampled_from(SEPARATORS),
    blank=st.booleans(),
)
def test_valid_files_read_as_written(fuzz_dir, mols, comment, newline, bom, sep, blank):
    lines = []
    for mol in mols:
        lines += frame_lines(mol, comment, sep) + ([""] if blank else [])
    table = read(write(fuzz_dir, lines, newline, b"\xef\xbb\xbf" if bom else b""))
    assert_frames(table, mols, records=list(range(1, len(mols) + 1)))
    if comment.strip() and "=" not in comment:
        assert table.columns["comment"].tolist() == [comment.strip()] * len(mols)


@given(mols=st.lists(molecules(), min_size=1, max_size=4), data=st.data())
def test_wrong_count_blames_its_own_frame(fuzz_dir, mols, clear_error, data):
    """A count one (or more) too small or too large is an error of that frame; the other frames still read."""
    bad = data.draw(st.integers(0, len(mols) - 1))
    n = len(mols[bad][0])
    count = data.draw(st.integers(0, n + 3).filter(lambda c: c != n))
    lines, line_of = [], {}
    for i, mol in enumerate(mols):
        line_of[i] = len(lines) + 1
        lines += frame_lines(mol, "", count=count if i == bad else None)
    path = write(fuzz_dir, lines)
    table, policy = _raises_then_skips(path, clear_error, bad, line_of[bad])
    good = [i for i in range(len(mols)) if i != bad]
    assert sum(policy.counts.values()) == 1
    assert_frames(table, [mols[i] for i in good], records=[i + 1 for i in good])


def _not_an_atomic_number(draw) -> str:
    return draw(
        st.one_of(
            st.integers(len(SYMBOLS) + 1, 10**30).map(str),
            st.just("0"),
            st.integers(-(10**6), -1).map(str),
            st.floats(1, 118).filter(lambda f: f != int(f)).map(repr),  # fractional
            st.sampled_from(["True", "False", "6.0", "1e1", "Xx", "Q", "D2"]),
            st.text(st.characters(categories=["Nd", "No"], exclude_characters="0123456789"), min_size=1, max_size=3),
        )
    )


@given(mol=molecules(), data=st.data())
def test_an_atom_that_is_not_an_element(fuzz_dir, mol, clear_error, data):
    """Atomic numbers outside 1..118, fractions, booleans, superscript or other non-ASCII digits."""
    token = _not_an_atomic_number(data.draw)
    atom = data.draw(st.integers(0, len(mol[0]) - 1))
    lines = frame_lines(mol, "")
    lines[2 + atom] = " ".join([token] + mol[2][atom][1:])
    path = write(fuzz_dir, lines)
    with pytest.raises(DataFormatError) as exc:
        read(path)
    assert "unknown element" in clear_error(exc.value, path, record=1, line=3 + atom)


@given(mol=molecules(), data=st.data())
def test_a_coordinate_that_does_not_fit(fuzz_dir, mol, clear_error, data):
    """Beyond float32 (1e39 would be stored as inf), beyond the plausible range, inf/nan, non-ASCII digits."""
    token = data.draw(
        st.one_of(
            st.floats(1000.001, 1e300).map(lambda v: f"{v:.6e}"),
            st.floats(1000.001, 1e300).map(lambda v: f"-{v!r}"),
            st.integers(39, 5000).map(lambda e: f"1e{e}"),
            st.sampled_from(["nan", "inf", "-Infinity", "1_0", "1,5", "0x10", "١٢", "3²", ".", "--1", "1e"]),
        )
    )
    atom, axis = data.draw(st.integers(0, len(mol[0]) - 1)), data.draw(st.integers(0, 2))
    lines = frame_lines(mol, "")
    tokens = list(mol[2][atom])
    tokens[1 + axis] = token
    lines[2 + atom] = " ".join(tokens)
    path = write(fuzz_dir, lines)
    with pytest.raises(DataFormatError) as exc:
        read(path)
    msg = clear_error(exc.value, path, record=1)
    assert any(k in msg for k in ("unparseable coordinate", "non-finite", "max_abs_coordinate_ang")), msg


@given(mols=st.lists(molecules(), min_size=2, max_size=3), data=st.data())
def test_a_count_line_that_is_not_a_count(fuzz_dir, mols, clear_error, data):
    """Superscripts, other digits, signs, decimals, a multi-megabyte number, a count above int16."""
    token = data.draw(
        st.one_of(
            st.sampled_from(["²", "³", "¹²", "٣", "+3", "-2", "3.0", "three", "0x3", "3 4"]),
            st.integers(MAX_ATOMS + 1, 10**12).map(str),
            st.integers(5_000, 1_000_000).map(lambda n: "9" * n),
        )
    )
    bad = data.draw(st.integers(0, len(mols) - 1))
    lines, line_of = [], {}
    for i, mol in enumerate(mols):
        line_of[i] = len(lines) + 1
        frame = frame_lines(mol, "")
        lines += [token] + frame[1:] if i == bad else frame
    path = write(fuzz_dir, lines)
    table, _ = _raises_then_skips(path, clear_error, bad, line_of[bad])
    assert_frames(table, [m for i, m in enumerate(mols) if i != bad])


@given(mols=st.lists(molecules(), min_size=1, max_size=3), data=st.data())
def test_bytes_that_are_not_utf8(fuzz_dir, mols, clear_error, data):
    lines = []
    for mol in mols:
        lines += frame_lines(mol, "a comment")
    target = data.draw(st.integers(0, len(lines) - 1))
    raw = [line.encode() for line in lines]
    cut = data.draw(st.integers(0, len(raw[target])))
    junk = data.draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80", b"\xfe\xfe"]))
    raw[target] = raw[target][:cut] + junk + raw[target][cut:]
    path = fuzz_dir / "bytes.xyz"
    path.write_bytes(b"\n".join(raw) + b"\n")
    frame_of_line = np.cumsum([0] + [len(m[0]) + 2 for m in mols])
    frame = int(np.searchsorted(frame_of_line, target, side="right"))
    with pytest.raises(DataFormatError) as exc:
        read(path)
    msg = clear_error(exc.value, path, record=frame)
    assert f"line {target + 1}: not UTF-8" in msg, msg


@given(mol=molecules(max_atoms=4), data=st.data())
def test_blank_line_inside_a_frame(fuzz_dir, mol, data, clear_error):
    lines = frame_lines(mol, "")
    lines.insert(2 + data.draw(st.integers(0, len(mol[0]) - 1)), "")
    path = write(fuzz_dir, lines)
    with pytest.raises(DataFormatError) as exc:
        read(path)
    clear_error(exc.value, path, record=1)


def test_empty_file_names_the_file(fuzz_dir, clear_error):
    for text in (b"", b"\n\n  \n", b"\xef\xbb\xbf"):
        path = fuzz_dir / "empty.xyz"
        path.write_bytes(text)
        with pytest.raises(DataFormatError) as exc:
            read(path)
        assert "holds no molecules" in clear_error(exc.value, path)
        policy = ErrorPolicy("skip")
        assert len(read(path, errors=policy)) == 0 and policy.counts == {"empty_file": 1}


def test_multi_megabyte_count_line(fuzz_dir, clear_error):
    """Python's int() refuses more than 4300 digits; the reader never gets that far."""
    path = fuzz_dir / "huge.xyz"
    path.write_text("7" * 5_000_000 + "\n\nC 0 0 0\n")
    with pytest.raises(DataFormatError) as exc:
        read(path)
    assert f"exceeds {MAX_ATOMS}" in clear_error(exc.value, path, record=1, line=1)
