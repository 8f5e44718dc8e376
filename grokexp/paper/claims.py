"""The paper's claims, each checked against what the paper specs measured (over seeds).

Every measure (claim_measures.py, claim_measures_init.py) takes the members of the specs it
needs (their varied values and snapshots) and returns its numbers and a flag per seed; its
wording (claim_wording.py) writes the numbers as ranges over seeds; here the flags become a
verdict: ``held``, ``not held``, or ``not measured`` when a spec or a series is missing.
Each claim also says how many of its specs' seeds were censored (test accuracy never reached
the threshold within the budget; claim_rules.py says how every measure counts them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import claim_wording as words
from .claim_measures import (
    bimodal_embedding,
    cosine_before_rise,
    drc_robust,
    frozen_suppresses,
    inactive_falls_then_rises,
    mc_variance_peak,
    relu_bimodal_delayed,
)
from .claim_measures_init import (
    constant_embedding_learns,
    constant_rest_fails,
    embedding_shift_sweep_delays,
    layer_shift_delays,
    scale_delay_linear,
    scaled_widths_compress,
    shift_sweep_delays,
    shifted_mean_returns,
)
from .claim_rules import Measured, Members, is_censored

__all__ = ["Claim", "CLAIMS", "evaluate_claims", "splits_covered", "verdict_of"]


@dataclass
class Claim:
    key: str
    statement: str
    figure: str
    specs: tuple[str, ...]
    measured: str = ""
    verdict: str = "not measured"
    censored: str = ""  # "1 of 3" (one spec) or "spec 1/3, spec 0/3"
    splits: str = ""  # distinct split seeds of its members: "3" (one spec) or "spec 3, spec 1"


def _censored(members: Members, specs: Sequence[str]) -> str:
    counts = [(s, sum(is_censored(r) for _, r in members[s]), len(members[s])) for s in specs]
    if len(counts) == 1:
        return f"{counts[0][1]} of {counts[0][2]}"
    return ", ".join(f"{s} {c}/{n}" for s, c, n in counts)


def splits_covered(members: Members, specs: Sequence[str]) -> str:
    """How many distinct train/test splits each spec's members cover ("?" when a member's
    split seed is not known: runs from before reproduce recorded it)."""
    counts = []
    for s in specs:
        seen = {v.get("train.split_seed") for v, _ in members[s]}
        counts.append((s, "?" if None in seen else str(len(seen))))
    return counts[0][1] if len(counts) == 1 else ", ".join(f"{s} {n}" for s, n in counts)


def verdict_of(flags: Sequence[bool]) -> str:
    if not flags:
        return "not measured"
    return "held" if all(flags) else ("not held" if not any(flags) else
                                      f"held in {sum(flags)} of {len(flags)} seeds")


Measure = Callable[[Members], Measured]
Wording = Callable[[Measured], str]
CLAIMS: list[tuple[Claim, Measure, Wording]] = [
    (Claim("mc_peak", "MC-dropout variance of test accuracy is negligible while memorising and "
           "has a local maximum during grokking (measured: its peak lies in the test rise, "
           "from the test accuracy's onset to the epoch it reaches its grok threshold; peak > "
           "5× the variance at the train grok epoch; below half the peak at the last "
           "evaluation)", "Fig. 1", ("baseline",)), mc_variance_peak, words.mc_variance_peak),
    (Claim("drc", "Once generalised, test accuracy is largely unaffected by dropout below "
           "0.2 (measured: acc(0.2) ≥ 0.9·acc(0))", "Fig. 2", ("baseline",)),
     drc_robust, words.drc_robust),
    (Claim("cosine", "Codiagonal cosine structure emerges before the test-accuracy rise "
           "(measured: the structure score's onset precedes the test accuracy's; onset = first "
           "epoch at which a series' trailing mean of 5 evaluations has made half its change "
           "from its first to its last value)",
           "Fig. 3", ("baseline",)), cosine_before_rise, words.cosine_before_rise),
    (Claim("bimodal", "Embeddings become bimodal with peaks near ±0.4", "Fig. 4a",
           ("baseline",)), bimodal_embedding, words.bimodal_embedding),
    (Claim("scale_delay", "Grokking delay grows about linearly with the init scale α "
           "(measured: R² ≥ 0.8, all grokked)", "Fig. 5", ("scale_sweep",)),
     scale_delay_linear, words.scale_delay_linear),
    (Claim("compress", "A broad (α = 7) initial distribution first compresses in every layer "
           "(measured: min std < 0.8·initial)", "Fig. 6b", ("scale_sweep",)),
     scaled_widths_compress, words.scaled_widths_compress),
    (Claim("shifted", "Shifted embeddings [0.4, 0.8] return to zero mean before training "
           "accuracy rises and end bimodal", "Figs. 7, 8", ("shifted",)),
     shifted_mean_returns, words.shifted_mean_returns),
    (Claim("shift_sweep", "Every layer's initial weights uniform in [0.4, 0.8] or [1.2, 1.6] "
           "shorten the grokking delay against [−0.2, 0.2]; [1.6, 2.0] damps test accuracy "
           "(measured per seed: delay < case 0's median; case 3's test accuracy stays < 0.5)",
           "Fig. 9", ("shift_sweep",)), shift_sweep_delays, words.shift_sweep_delays),
    (Claim("embedding_shift", "Fig. 9's intervals on the embedding alone, the other layers "
           "Xavier normal (grokexp's control, not a figure of the paper): the same test as "
           "Fig. 9", "Fig. 9 (embedding only)", ("embedding_shift_sweep",)),
     embedding_shift_sweep_delays, words.shift_sweep_delays),
    (Claim("layer_shift", "Shifting only the embedding, or only the other layers, to "
           "N(0.2, 0.1) delays grokking (measured per seed: grokking delay > the default's "
           "median)", "Fig. 10", ("layer_shift",)), layer_shift_delays, words.layer_shift_delays),
    (Claim("frozen", "Frozen embeddings: grokking is suppressed (measured: test accuracy stays "
           "below 0.5 within the budget)", "Sec. 3.2", ("frozen_embedding",)),
     frozen_suppresses, words.frozen_suppresses),
    (Claim("relu", "ReLU after the embedding: still bimodal, grokking markedly delayed "
           "(measured per seed: test grok later than the baseline's median, final BC > 5/9)",
           "Sec. 3.2", ("baseline", "embedding_relu")),
     relu_bimodal_delayed, words.relu_bimodal_delayed),
    (Claim("const_emb", "Constant embeddings: learning still occurs", "Sec. 3.3",
           ("constant_embedding",)), constant_embedding_learns, words.constant_embedding_learns),
    (Claim("const_rest", "Constant other layers: learning is precluded", "Sec. 3.3",
           ("constant_rest",)), constant_rest_fails, words.constant_rest_fails),
    (Claim("inactive", "Inactive-neuron share falls while memorising, then rises "
           "(measured on the share of zero ReLU outputs)",
           "Fig. 11", ("baseline",)), inactive_falls_then_rises, words.inactive_falls_then_rises),
]


def evaluate_claims(members: Members) -> list[Claim]:
    """Every claim whose specs were run, measured."""
    out = []
    for template, measure, wording in CLAIMS:
        claim = Claim(template.key, template.statement, template.figure, template.specs)
        if all(members.get(s) for s in claim.specs):
            measured = measure(members)
            claim.measured = wording(measured)
            claim.verdict = verdict_of(measured.flags)
            claim.censored = _censored(members, claim.specs)
            claim.splits = splits_covered(members, claim.specs)
        out.append(claim)
    return out
