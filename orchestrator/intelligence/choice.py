"""Which channel to send on: the best posterior among the channels we may use, and why.

``choose_channel`` ranks the available channels (a contact point, consent, not capped: the
caller decides that) by posterior mean engagement, optionally multiplied by a timing factor
per channel (how good the best moment we may send on that channel is; see ``decide``).
Ties go to the channel earlier in the marketer's ``fallback_order``, which also lists the
channels to try next, in that order, if the chosen one fails at send time.

Cold start (no sends on any available channel): every estimate is the population prior,
so the ranking is the population's, and the pick is deterministic. Nothing is explored:
a draw from population priors is close to a coin toss, which is what a cold start must
not be; the first send's outcome starts the learning instead.

Exploration: with probability ``explore_rate`` a decision is a Thompson sample, one draw
per channel from its posterior, highest draw wins. A channel we know to be poor has a
tight posterior and is almost never drawn above the best, so exploration is spent where
the model is unsure (thin or old data), and recorded as such on the Choice.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from orchestrator.intelligence.affinity import ChannelEstimate

# A send node's share of exploring decisions when it says nothing (its "explore"), and the
# rate bench/intelligence.py measures: on the simulator 10% cost about 0.02 of the oracle's
# lift against 5% and learned nothing more (best-channel accuracy 0.90 either way).
DEFAULT_EXPLORE = 0.05
CHANNEL_LABELS = {"email": "email", "sms": "SMS", "push": "push", "in_app": "in-app"}
_POSITIVE = 1e-9  # random.betavariate needs parameters > 0


class Reason(StrEnum):
    AFFINITY = "affinity"  # the highest posterior among available channels
    COLD_START = "cold_start"  # no history on any available channel: the population's best
    EXPLORED = "explored"  # a Thompson sample
    ONLY_AVAILABLE = "only_available"
    NO_ESTIMATE = "no_estimate"  # no available channel has an estimate: fallback order
    NONE_AVAILABLE = "none_available"


@dataclass(frozen=True)
class Choice:
    channel: str | None
    reason: Reason
    ranked: tuple[ChannelEstimate, ...]  # the available channels' estimates, greedy order
    fallbacks: tuple[str, ...] = ()  # the other available channels, in fallback order
    explored: bool = False
    draws: tuple[tuple[str, float], ...] = ()  # Thompson draws (× timing) when explored
    unavailable_best: ChannelEstimate | None = None  # a better channel we may not use
    timing: tuple[tuple[str, float], ...] = ()  # timing factors the ranking used

    def explain(self) -> str:
        """One sentence a marketer can read on the profile or in the simulator timeline."""
        sentence = _SENTENCES[self.reason](self)
        best = self.unavailable_best
        if best is not None and self.channel is not None:
            sentence += (
                f"; {label(best.channel)} engages more ({percent(best.mean)}) but is unavailable"
            )
        return sentence


def choose_channel(
    estimates: Mapping[str, ChannelEstimate],
    available: Iterable[str],
    *,
    fallback_order: Sequence[str],
    explore_rate: float,
    rng: random.Random,
    timing: Mapping[str, float] | None = None,
) -> Choice:
    """The channel for one send; channels outside `fallback_order` are never chosen."""
    allowed = set(available)
    candidates = [channel for channel in fallback_order if channel in allowed]
    factors = {channel: (timing or {}).get(channel, 1.0) for channel in candidates}
    ranked = _ranked(estimates, candidates, factors)
    better = _unavailable_best(estimates, fallback_order, allowed, ranked)
    timing_used = tuple(factors.items()) if timing else ()
    if not candidates:
        return Choice(None, Reason.NONE_AVAILABLE, ())
    if not ranked:
        return Choice(candidates[0], Reason.NO_ESTIMATE, (), tuple(candidates[1:]))
    channel, reason, draws = _pick(ranked, factors, candidates, explore_rate, rng)
    fallbacks = tuple(c for c in candidates if c != channel)
    return Choice(
        channel, reason, ranked, fallbacks, reason == Reason.EXPLORED, draws, better, timing_used
    )


def _ranked(
    estimates: Mapping[str, ChannelEstimate], candidates: list[str], factors: Mapping[str, float]
) -> tuple[ChannelEstimate, ...]:
    """Estimated candidates by expected engagement, ties in fallback order (sort is stable)."""
    scored = [estimates[channel] for channel in candidates if channel in estimates]
    return tuple(sorted(scored, key=lambda e: -e.mean * factors[e.channel]))


def _pick(
    ranked: tuple[ChannelEstimate, ...],
    factors: Mapping[str, float],
    candidates: list[str],
    explore_rate: float,
    rng: random.Random,
) -> tuple[str, Reason, tuple[tuple[str, float], ...]]:
    greedy = ranked[0].channel
    if len(candidates) == 1:
        return greedy, Reason.ONLY_AVAILABLE, ()
    if not any(e.has_history for e in ranked):
        return greedy, Reason.COLD_START, ()
    if explore_rate > 0 and rng.random() < explore_rate:
        draws = tuple((e.channel, thompson_draw(e, rng) * factors[e.channel]) for e in ranked)
        return max(draws, key=lambda d: d[1])[0], Reason.EXPLORED, draws
    return greedy, Reason.AFFINITY, ()


def thompson_draw(estimate: ChannelEstimate, rng: random.Random) -> float:
    return rng.betavariate(max(_POSITIVE, estimate.alpha), max(_POSITIVE, estimate.beta))


def _unavailable_best(
    estimates: Mapping[str, ChannelEstimate],
    fallback_order: Sequence[str],
    allowed: set[str],
    ranked: tuple[ChannelEstimate, ...],
) -> ChannelEstimate | None:
    """The best channel of the fallback order, when we may not use it and know it is better."""
    known = [estimates[c] for c in fallback_order if c in estimates and estimates[c].has_history]
    if not known:
        return None
    best = max(known, key=lambda e: e.mean)
    top = ranked[0].mean if ranked else 0.0
    return best if best.channel not in allowed and best.mean > top else None


# --- Wording ---------------------------------------------------------------------------------


def label(channel: str) -> str:
    return CHANNEL_LABELS.get(channel, channel)


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def percent(rate: float) -> str:
    """ "4.2%" below 10%, "41%" above: the precision the estimate can bear."""
    return f"{rate * 100:.1f}%" if rate < 0.1 else f"{rate * 100:.0f}%"


def days_between(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    return max(1, round((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 86400))


def _affinity_sentence(choice: Choice) -> str:
    best = choice.ranked[0]
    if len(choice.ranked) < 2:
        return f"{capitalised(label(best.channel))} engagement {percent(best.mean)}"
    runner = choice.ranked[1]
    if best.mean < runner.mean:  # reordered by timing factors (see choose_send)
        return (
            f"{capitalised(label(best.channel))} at a better hour: {label(runner.channel)} engages more"
            f" ({percent(runner.mean)} vs {percent(best.mean)}) but its best allowed hour is weaker"
        )
    # Ratios of posterior means: what the model ranks by, shrinkage included. Email, the
    # channel most shops send by default, is named too when it is neither of the two.
    compared = [runner] + [e for e in choice.ranked[2:] if e.channel == "email" and e.has_history]
    ratios = " and ".join(f"{_ratio(best, other)}× {label(other.channel)}" for other in compared)
    starts = [e.first_sent_at for e in (best, *compared) if e.first_sent_at is not None]
    days = days_between(min(starts), best.as_of) if starts else 0
    sentence = f"{capitalised(label(best.channel))} engagement {ratios} over {days} days"
    if runner.has_history:
        counts = _listed([f"{e.raw_sends} {label(e.channel)}" for e in (best, *compared)]) + " sends"
    else:
        counts = f"{best.raw_sends} {_plural(best.raw_sends, 'send')}; {label(runner.channel)}: no sends yet, population rate"
    return f"{sentence} ({counts})"


def _ratio(best: ChannelEstimate, other: ChannelEstimate) -> str:
    return f"{best.mean / other.mean:.1f}" if other.mean > 0 else "∞"


def _listed(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c" """
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _explored_sentence(choice: Choice) -> str:
    drawn = dict(choice.draws)
    greedy = choice.ranked[0]
    assert choice.channel is not None
    others = ", ".join(f"{label(c)} {v:.2f}" for c, v in choice.draws if c != choice.channel)
    sentence = f"exploring (Thompson sample): {label(choice.channel)} drew {drawn[choice.channel]:.2f} vs {others}"
    if greedy.channel != choice.channel:
        sentence += f"; best estimate {label(greedy.channel)} {percent(greedy.mean)}"
    return sentence


def _cold_start_sentence(choice: Choice) -> str:
    best = choice.ranked[0]
    return f"no engagement history: {label(best.channel)}, the population's best available channel ({percent(best.mean)} engagement)"


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


_SENTENCES = {
    Reason.AFFINITY: _affinity_sentence,
    Reason.EXPLORED: _explored_sentence,
    Reason.COLD_START: _cold_start_sentence,
    Reason.ONLY_AVAILABLE: lambda c: (
        f"{capitalised(label(c.channel or ''))}: the only available channel"
    ),
    Reason.NO_ESTIMATE: lambda c: (
        f"{capitalised(label(c.channel or ''))}: first available in the fallback order (no estimates)"
    ),
    Reason.NONE_AVAILABLE: lambda c: "no channel available",
}
