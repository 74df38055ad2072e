"""The report's figures (matplotlib, Agg backend), each written atomically as PNG.

Every function draws what it has: a missing input, an empty table or a model whose rows all failed gives
a panel or legend entry that says so, never an exception. Each returns those remarks (a list of lines,
empty when everything was drawn) so that the caption can repeat them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from elign.io.atomic import atomic_path  # noqa: E402

COLORS = {"reference": "0.45", "pretrained": "tab:blue", "aligned": "tab:orange", "guided": "tab:green"}
FINETUNE_PANELS = (
    ("force_reward_mean", "force reward (−RMS |F|, eV/Å)"),
    ("force_rms_mean_ev_per_ang", "MLFF force RMS (eV/Å)"),
    ("formation_energy_mean_ev_per_atom", "MLFF formation energy (eV/atom)"),
    ("energy_return_mean_ev_per_atom", "energy return (eV/atom)"),
    ("loss", "loss"),
    ("kl_ref", "KL to pretrained"),
    ("clip_fraction", "clip fraction"),
    ("excluded", "rollouts without reward"),
)
#: the collapse watch (elign.rl.quality): each panel shows the rollouts (every iteration) and fresh samples
#: (every finetune.eval_every iterations)
QUALITY_PANELS = (
    ("validity", "RDKit validity"),
    ("uniqueness", "uniqueness (of valid)"),
    ("molecule_stability", "molecule stability"),
)


def color(name: str, i: int) -> str:
    return COLORS.get(name, f"C{(i + 3) % 10}")


@contextmanager
def figure(
    path: str | Path, dpi: int, nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.4, 4.2)
) -> Iterator[np.ndarray]:
    """A figure of nrows x ncols axes (always a 2-D array), saved to ``path`` atomically on exit."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    try:
        yield axes
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


def placeholder(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, color="0.3", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]


def _has(frame: pd.DataFrame | None, *columns: str) -> bool:
    return frame is not None and len(frame) > 0 and all(c in frame for c in columns)


def plot_pretrain_loss(history: pd.DataFrame | None, path: str | Path, dpi: int) -> list[str]:
    """Training loss against the optimizer step (raw and a running mean) and, beside it, the sample quality
    of the in-training evaluations (EDM's atom and molecule stability, RDKit validity) when there are any."""
    evals = _evaluations(history)
    with figure(path, dpi, ncols=2 if evals is not None else 1) as axes:
        ax = axes[0, 0]
        ax.set_title("Pretraining loss")
        if not _has(history, "step", "loss") or not np.isfinite(history["loss"].to_numpy(float)).any():
            placeholder(ax, "no pretraining history")
            return ["no pretraining history"]
        step, loss = history["step"].to_numpy(float), history["loss"].to_numpy(float)
        ax.plot(step, loss, color="tab:blue", alpha=0.35, lw=1, label="logged loss")
        window = max(1, len(loss) // 20)
        ax.plot(
            step,
            pd.Series(loss).rolling(window, min_periods=1).mean(),
            color="tab:blue",
            lw=2,
            label=f"running mean ({window} points)",
        )
        if (_finite(loss) > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("L2 ε loss")
        ax.legend()
        if evals is not None:
            _plot_evaluations(axes[0, 1], evals)
    return []


EVAL_CURVES = (
    ("eval_atom_stability", "atom stability"),
    ("eval_molecule_stability", "molecule stability"),
    ("eval_validity", "validity"),
)


def _evaluations(history: pd.DataFrame | None) -> pd.DataFrame | None:
    """The history rows with an in-training evaluation, or None when there is none."""
    if not _has(history, "step", "eval_molecules"):
        return None
    rows = history[history["eval_molecules"].notna()]
    return rows if len(rows) else None


def _plot_evaluations(ax, evals: pd.DataFrame) -> None:
    n = int(evals["eval_molecules"].iloc[-1])
    ax.set_title(f"Samples while training ({n} molecules, EMA weights, T steps)")
    for i, (col, label) in enumerate(EVAL_CURVES):
        if col in evals:
            ax.plot(evals["step"].to_numpy(float), evals[col].to_numpy(float), "o-", color=f"C{i}", label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("fraction")
    ax.grid(alpha=0.3)
    ax.legend()


def plot_finetune(history: pd.DataFrame | None, path: str | Path, dpi: int, start: dict | None = None) -> list[str]:
    """FED-GRPO curves per iteration: rewards and MLFF statistics (top), training quantities (middle), and
    the rollouts' and fresh samples' validity, uniqueness, stability and relaxation energy (bottom: the
    collapse watch). Fresh samples (every ``finetune.eval_every`` iterations, fixed noise) also go beside the
    rollouts' force RMS; ``start``: the evaluation of the weights FED-GRPO started from (``eval_*`` keys),
    drawn at iteration 0."""
    if not _has(history, "iteration"):
        missing = {c: "no FED-GRPO history" for c, _ in FINETUNE_PANELS}
    else:
        missing = {
            c: f"no values of {c}"
            for c, _ in FINETUNE_PANELS
            if c not in history or not np.isfinite(history[c].to_numpy(float)).any()
        }
    evals = _fresh_samples(history, start)
    with figure(path, dpi, 3, 4, size=(4.0, 3.2)) as axes:
        for ax, (column, label) in zip(axes.ravel()[:8], FINETUNE_PANELS):
            ax.set_title(label, fontsize=10)
            if column in missing:
                placeholder(ax, missing[column])
                continue
            ax.plot(history["iteration"].to_numpy(float), history[column].to_numpy(float), marker=".", lw=1.5)
            ax.set_xlabel("iteration")
            if column == "force_rms_mean_ev_per_ang" and _series(ax, evals, "eval_force_rms_mean_ev_per_ang"):
                ax.get_lines()[0].set_label("rollouts")
                ax.legend(fontsize=8)
        quality_missing = _plot_quality(axes[2], history, evals)
    return list(dict.fromkeys([*missing.values(), *quality_missing]))


FRESH = {"marker": "o", "lw": 2.0, "color": "C1", "label": "fresh samples"}


def _fresh_samples(history: pd.DataFrame | None, start: dict | None) -> pd.DataFrame:
    """The fresh-sample evaluation rows (iteration and ``eval_*``), ``start`` first at iteration 0."""
    rows = [pd.DataFrame([{**start, "iteration": 0}])] if start else []
    if _has(history, "iteration"):
        rows.append(history[["iteration", *[c for c in history if str(c).startswith("eval_")]]])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({"iteration": []})


def _series(ax, frame: pd.DataFrame, column: str, **style) -> bool:
    """Plot ``column`` of ``frame`` against its iterations where finite; whether anything was drawn."""
    if column not in frame:
        return False
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    ok = np.isfinite(values)
    if ok.any():
        ax.plot(frame["iteration"].to_numpy(float)[ok], values[ok], **{**FRESH, **style})
    return bool(ok.any())


def _plot_quality(axes, history: pd.DataFrame | None, evals: pd.DataFrame) -> list[str]:
    """The bottom row of :func:`plot_finetune`; returns what it could not draw."""
    missing = []
    for ax, (key, label) in zip(axes, QUALITY_PANELS):
        ax.set_title(label, fontsize=10)
        drawn = _has(history, "rollout_" + key) and _series(
            ax, history, "rollout_" + key, marker=".", lw=1.0, color="C0", label="rollouts"
        )
        drawn = _series(ax, evals, "eval_" + key) or drawn
        if drawn:
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("iteration")
            ax.legend(fontsize=8)
        else:
            missing.append(f"no values of rollout_{key} or eval_{key}")
            placeholder(ax, missing[-1])
    ax = axes[3]
    ax.set_title("relaxation energy (kcal/mol)", fontsize=10)
    if _series(ax, evals, "eval_relaxation_energy_mean_kcal_mol"):
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
    else:
        missing.append("no values of eval_relaxation_energy_mean_kcal_mol")
        placeholder(ax, missing[-1])
    return missing


def _bins(groups: dict[str, np.ndarray], n_bins: int) -> tuple[np.ndarray, bool]:
    """Shared bins over the 0.5-99.5 % quantiles of all values (clipped: whether values fall outside)."""
    pooled = np.concatenate([v for v in groups.values() if v.size])
    lo, hi = np.quantile(pooled, [0.005, 0.995]) if pooled.size > 20 else (pooled.min(), pooled.max())
    if not hi > lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
    return np.linspace(lo, hi, n_bins + 1), bool((pooled < lo).any() or (pooled > hi).any())


def plot_distributions(
    groups: dict[str, np.ndarray | None], path: str | Path, dpi: int, title: str, xlabel: str, n_bins: int, empty: str
) -> list[str]:
    """Overlaid density histograms, one per name. groups: name -> per-molecule values (NaN = failed), or None
    when the input is missing. A name without a usable value is a legend entry saying so."""
    cleaned = {n: (None if v is None else _finite(v), 0 if v is None else int(np.size(v))) for n, v in groups.items()}
    remarks = [
        f"{n}: no input or no values"
        if v is None
        else f"{n}: no successful rows ({total} failed)"
        if total
        else f"{n}: no rows"
        for n, (v, total) in cleaned.items()
        if v is None or v.size == 0
    ]
    with figure(path, dpi) as axes:
        ax = axes[0, 0]
        ax.set_title(title)
        usable = {n: v for n, (v, _) in cleaned.items() if v is not None and v.size}
        if not usable:
            placeholder(ax, "\n".join([empty, *remarks]))
            return [empty, *remarks]
        bins, clipped = _bins(usable, n_bins)
        handles = [Line2D([], [], color="none", label=r) for r in remarks]
        for i, (name, (values, total)) in enumerate(cleaned.items()):
            if values is None or values.size == 0:
                continue
            ax.hist(
                np.clip(values, bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=2, color=color(name, i)
            )
            label = f"{name}: n={values.size}, failed {total - values.size}, median {np.median(values):.3g}"
            handles.append(Line2D([], [], color=color(name, i), lw=2, label=label))
        ax.set_xlabel(xlabel + (" (clipped to 0.5-99.5 % quantiles)" if clipped else ""))
        ax.set_ylabel("density")
        ax.legend(handles=handles, fontsize=8)
    return remarks


def plot_sizes(sizes: dict[str, np.ndarray | None], path: str | Path, dpi: int) -> list[str]:
    """Atom-count histograms per name (fraction of molecules per size)."""
    with figure(path, dpi) as axes:
        ax = axes[0, 0]
        ax.set_title("Molecule sizes")
        present = {n: np.asarray(v, dtype=int) for n, v in sizes.items() if v is not None and np.size(v)}
        remarks = [f"{n}: no molecules" for n in sizes if n not in present]
        if not present:
            placeholder(ax, "no molecules to count")
            return ["no molecules to count", *remarks]
        edges = np.arange(min(v.min() for v in present.values()) - 0.5, max(v.max() for v in present.values()) + 1.5)
        for i, (name, v) in enumerate(present.items()):
            ax.hist(
                v,
                bins=edges,
                weights=np.full(v.size, 1 / v.size),
                histtype="step",
                lw=2,
                color=color(name, i),
                label=f"{name} (n={v.size})",
            )
        for remark in remarks:
            ax.plot([], [], color="none", label=remark)
        ax.set_xlabel("atoms per molecule")
        ax.set_ylabel("fraction of molecules")
        ax.legend(fontsize=8)
    return remarks


def _timing_bars(timing: dict | None, summaries: dict[str, dict]) -> tuple[dict, dict, str]:
    """(seconds per molecule, per-repetition values, source) from time_sampling, else the sample stage."""
    if timing and timing.get("models"):
        means, reps = {}, {}
        for name, entry in timing["models"].items():
            means[name] = float(entry.get("seconds_per_molecule", math.nan))
            n = entry.get("molecules") or 0
            reps[name] = [float(r) / n for r in entry.get("reps_s", [])] if n else []
        where = f"time_sampling: device {timing.get('device', '?')}, {timing.get('threads', '?')} thread(s)"
        return means, reps, where
    means = {
        n: s["sample_seconds"] / s["num_molecules"]
        for n, s in summaries.items()
        if s.get("num_molecules") and s.get("sample_seconds") is not None
    }
    return means, {}, "sample stage wall time (not a controlled timing)"


def plot_sampling_time(timing: dict | None, summaries: dict[str, dict], path: str | Path, dpi: int) -> list[str]:
    """Seconds per sampled molecule per model (bars), repetitions as points, ratios to pretrained."""
    with figure(path, dpi) as axes:
        ax = axes[0, 0]
        ax.set_title("Sampling time")
        means, reps, where = _timing_bars(timing, summaries)
        means = {n: v for n, v in means.items() if math.isfinite(v)}
        if not means:
            placeholder(ax, "sampling time not measured")
            return ["sampling time not measured"]
        x = np.arange(len(means))
        ax.bar(x, list(means.values()), color=[color(n, i) for i, n in enumerate(means)], alpha=0.8)
        for i, name in enumerate(means):
            if reps.get(name):
                ax.plot(np.full(len(reps[name]), i), reps[name], "k.", ms=5)
        ratios = (timing or {}).get("ratio_vs_pretrained", {})
        labels = [f"{n}\n×{ratios[n]:.2f}" if isinstance(ratios.get(n), (int, float)) else n for n in means]
        ax.set_xticks(x, labels)
        ax.set_ylabel("seconds per molecule")
        ax.set_xlabel(where, fontsize=8)
    return [] if timing else [where]
