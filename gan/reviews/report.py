"""The reviews evaluation as Markdown (``report.md``; ``report.json`` holds every number)."""

from __future__ import annotations

from typing import Any

DET_COLUMNS = ("accuracy", "auroc", "accuracy_negative", "accuracy_positive")
GEN_ROWS = (
    ("copy_share_8gram", "share with an 8-word sequence of a training review", "{:.3f}"),
    ("longest_copied_span", "longest copied span (words)", "{}"),
    ("half_copied_share", "share repeating half of a training review", "{:.3f}"),
    ("distinct_1", "distinct-1", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("self_bleu4", "self-BLEU-4 (lower: more diverse)", "{:.3f}"),
    ("polarity_agreement", "polarity agreement (real-trained classifier)", "{:.3f}"),
    ("real_vs_generated_accuracy", "real-vs-generated accuracy, trigram-LM features "
     "(0.5: indistinguishable)", "{:.3f}"),
    ("mean_words", "mean length (tokens)", "{:.0f}"),
)  # fmt: skip


def detection_table(det: dict[str, Any]) -> str:
    """Mean ± spread (std over folds) of each detector."""
    lines = ["| model | " + " | ".join(DET_COLUMNS) + " |", "|---" * (len(DET_COLUMNS) + 1) + "|"]
    for name, scores in det.items():
        if not isinstance(scores, dict):
            continue
        cells = [f"{scores[c]['mean']:.3f} ± {scores[c]['std']:.3f}" for c in DET_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def generation_table(gen: dict[str, Any]) -> str:
    """One column per text source, one row per metric."""
    names = [k for k, v in gen.items() if isinstance(v, dict)]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label, fmt in GEN_ROWS:
        cells = [fmt.format(gen[n][key]) if key in gen[n] else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(result: dict[str, Any]) -> str:
    """The report: both tables, what the detector keys on, and samples marked synthetic."""
    det, gen, keys = result["detection"], result["generation"], result["keys_on"]
    cfg = result["cv_config"]
    rule = keys["trailing_whitespace_rule_accuracy_raw"]
    parts = [
        "# Reviews evaluation" + (" (quick)" if result["quick"] else ""),
        "",
        f"Checkpoint `{result['checkpoint']}`.",
        "",
        "## Detection: hotel-grouped cross-validation (mean ± std over folds)",
        "",
        detection_table(det),
        "",
        f"Each fold trains both detectors on the other hotels ({cfg['steps']} steps, the "
        f"generator's MLE for {cfg['mle_steps']}); CPU time of the CV: {det['cpu_s']:.0f} s. "
        "Threshold: logit 0 (argmax).",
        "",
        "What could be keyed on: on the raw texts, 'ends with a space and a newline => "
        "truthful' scores "
        f"{rule['positive']:.3f} on positive and {rule['negative']:.3f} on negative reviews; "
        "every model here sees normalised text. Words pushing the detector towards deceptive: "
        + ", ".join(keys["deceptive_words"]) + "; towards truthful: "
        + ", ".join(keys["truthful_words"]) + ".",
        "",
        "## Generation (held-out hotels' real reviews, our generator, the Markov floor)",
        "",
        generation_table(gen),
        "",
        "## Generated reviews (synthetic)",
        "",
    ]  # fmt: skip
    for s in gen["samples"]:
        parts += [f"- **[synthetic, {s['polarity']}]** {s['text']}", ""]
    parts += ["Markov chain (synthetic): " + " / ".join(gen["markov_samples"]), ""]
    return "\n".join(parts)
