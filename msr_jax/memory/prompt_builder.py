"""Places the most relevant remembered experiences into a context window under a budget.

Relevance of experience i to a query is a weighted sum (weights in `RelevanceWeights`):

  score_i = w_entity    * sim(E_query, E_i)                      (Jaccard or shared count)
          + w_recency   * 0.5 ** ((now - step_i) / half_life)    (exponential decay)
          + w_embedding * cos(embed(query_text), embed(text_i))  (only when w_embedding > 0)

Experiences are ranked by score, ties broken by the newer step, then by the later position
in the input (so the order is fully deterministic). They are then taken greedily: each is
added if the whole rendered text still fits `budget` tokens under the caller's
`count_tokens`, otherwise skipped (a smaller, less relevant one may still fit). The budget
is checked on the full rendered text, so it holds even for tokenizers whose counts are not
additive over concatenation.

The rendered text is a "memory:" block, most relevant first:

  memory:
  <render(experience 1)>
  <render(experience 2)>

where the default `render` writes one "role: content" line per message. `MemoryContext.
as_messages()` wraps the block in a single system message for chat-formatted prompts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Sequence

import numpy as np

from msr_jax.data.records import Message
from msr_jax.memory.episodic import Experience
from msr_jax.memory.record_json import record_text

ENTITY_MEASURES = ("jaccard", "count")
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class RelevanceWeights:
  """Weights of the relevance terms (non-negative) and their shape parameters.

  Attributes:
    entity: weight of the entity overlap with the query.
    recency: weight of the recency term 0.5 ** (age / half_life), which is 1 for the
      newest experience.
    embedding: weight of the cosine similarity of embeddings; 0 disables the term and the
      embedding function is never called.
    half_life: age (in steps) at which the recency term has halved.
    entity_measure: "jaccard" (|Q & E| / |Q | E|, in [0, 1]) or "count" (|Q & E|).
  """
  entity: float = 1.0
  recency: float = 1.0
  embedding: float = 0.0
  half_life: float = 16.0
  entity_measure: str = "jaccard"

  def __post_init__(self):
    for name in ("entity", "recency", "embedding"):
      value = getattr(self, name)
      if not math.isfinite(value) or value < 0:
        raise ValueError(f"RelevanceWeights.{name} must be finite and >= 0, got {value!r}")
    if not math.isfinite(self.half_life) or self.half_life <= 0:
      raise ValueError(f"RelevanceWeights.half_life must be finite and > 0, got "
                       f"{self.half_life!r}")
    if self.entity_measure not in ENTITY_MEASURES:
      raise ValueError(f"RelevanceWeights.entity_measure must be one of {ENTITY_MEASURES}, "
                       f"got {self.entity_measure!r}")


@dataclasses.dataclass(frozen=True)
class MemoryContext:
  """The chosen experiences (most relevant first), their scores and the rendered block."""
  experiences: tuple[Experience, ...]
  scores: tuple[float, ...]
  text: str
  num_tokens: int

  def as_messages(self) -> tuple[Message, ...]:
    """The block as one system message (no message when nothing was chosen)."""
    return (Message(role="system", content=self.text),) if self.experiences else ()


def entity_similarity(query: frozenset[str], entities: frozenset[str], measure: str) -> float:
  shared = len(query & entities)
  if measure == "count":
    return float(shared)
  union = len(query | entities)
  return shared / union if union else 0.0


def _embeddings(experiences: Sequence[Experience], query_text: str | None,
                query_embedding_D: np.ndarray | None, embed: EmbedFn | None):
  """Returns (query_D, items_NxD), calling `embed` once for everything not precomputed."""
  missing = [i for i, e in enumerate(experiences) if e.embedding_D is None]
  texts = [record_text(experiences[i].record) for i in missing]
  if query_embedding_D is None:
    if query_text is None:
      raise ValueError("embedding relevance needs query_text or query_embedding_D")
    texts = [query_text] + texts
  if texts and embed is None:
    raise ValueError("embedding relevance is enabled (weights.embedding > 0) but no embed "
                     "function was given and some embeddings are not precomputed")
  computed_NxD = np.zeros((0, 0))
  if texts:
    computed_NxD = np.asarray(embed(texts), dtype=np.float64)
    if computed_NxD.ndim != 2 or computed_NxD.shape[0] != len(texts):
      raise ValueError(f"embed returned shape {computed_NxD.shape}; expected "
                       f"({len(texts)}, D) for {len(texts)} texts")
    if not np.all(np.isfinite(computed_NxD)):
      raise ValueError("embed returned non-finite values")
  if query_embedding_D is None:
    query_D, computed_NxD = computed_NxD[0], computed_NxD[1:]
  else:
    query_D = np.asarray(query_embedding_D, dtype=np.float64)
  rows = [e.embedding_D for e in experiences]
  for j, i in enumerate(missing):
    rows[i] = computed_NxD[j]
  dims = {r.shape for r in rows} | {query_D.shape}
  if len(dims) != 1:
    raise ValueError(f"embeddings have mismatched shapes {sorted(dims)}")
  return query_D, np.stack(rows) if rows else np.zeros((0,) + query_D.shape)


def cosine_similarity(query_D: np.ndarray, items_NxD: np.ndarray) -> np.ndarray:
  """Cosine similarity of each row with the query; 0 where either vector is zero."""
  norms_N = np.linalg.norm(items_NxD, axis=-1) * np.linalg.norm(query_D)
  dots_N = items_NxD @ query_D
  return np.where(norms_N > 0, dots_N / np.where(norms_N > 0, norms_N, 1.0), 0.0)


def relevance_scores(experiences: Sequence[Experience], query_entities: Iterable[str] = (),
                     *, weights: RelevanceWeights = RelevanceWeights(), now: int | None = None,
                     query_text: str | None = None, query_embedding_D: np.ndarray | None = None,
                     embed: EmbedFn | None = None) -> np.ndarray:
  """The relevance score of every experience (float64 array, input order); see module doc.

  `now` defaults to the newest step among the experiences; experiences newer than `now`
  count as age 0.
  """
  experiences = list(experiences)
  if not experiences:
    return np.zeros((0,), dtype=np.float64)
  if isinstance(query_entities, str):
    raise TypeError("query_entities must be an iterable of strings, not a single string")
  query = frozenset(query_entities)
  steps_N = np.array([e.step for e in experiences], dtype=np.float64)
  if now is None:
    now = int(steps_N.max())
  ages_N = np.maximum(float(now) - steps_N, 0.0)
  scores_N = weights.recency * np.power(0.5, ages_N / weights.half_life)
  if weights.entity:
    entity_N = np.array([entity_similarity(query, e.entities, weights.entity_measure)
                         for e in experiences], dtype=np.float64)
    scores_N = scores_N + weights.entity * entity_N
  if weights.embedding:
    query_D, items_NxD = _embeddings(experiences, query_text, query_embedding_D, embed)
    scores_N = scores_N + weights.embedding * cosine_similarity(query_D, items_NxD)
  return scores_N


def _render_block(header: str, blocks: Sequence[str]) -> str:
  return "\n".join([header, *blocks])


def build_memory_context(
    experiences: Iterable[Experience], *, count_tokens: Callable[[str], int], budget: int,
    query_entities: Iterable[str] = (), weights: RelevanceWeights = RelevanceWeights(),
    now: int | None = None, query_text: str | None = None,
    query_embedding_D: np.ndarray | None = None, embed: EmbedFn | None = None,
    render: Callable[[Experience], str] = lambda e: record_text(e.record),
    header: str = "memory:", max_records: int | None = None) -> MemoryContext:
  """Chooses and renders the most relevant experiences within `budget` tokens.

  Args:
    experiences: the candidates (for example `EpisodicBuffer.experiences()`).
    count_tokens: counts the tokens of a text (the model's tokenizer).
    budget: the most tokens the rendered block may take (header included). If not even
      the header plus one experience fits, nothing is chosen and the text is empty.
    query_entities, weights, now, query_text, query_embedding_D, embed: as in
      `relevance_scores`.
    render: turns one experience into its text in the block.
    header: the first line of the block.
    max_records: at most this many experiences (default: no limit).

  Returns:
    A `MemoryContext`; `num_tokens == count_tokens(text) <= budget`.
  """
  if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
    raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
  experiences = list(experiences)
  scores_N = relevance_scores(experiences, query_entities, weights=weights, now=now,
                              query_text=query_text, query_embedding_D=query_embedding_D,
                              embed=embed)
  # Highest score first; ties: newer step first, then later input position first.
  order = sorted(range(len(experiences)),
                 key=lambda i: (-scores_N[i], -experiences[i].step, -i))
  chosen: list[int] = []
  blocks: list[str] = []
  text, num_tokens = "", 0
  for i in order:
    if max_records is not None and len(chosen) >= max_records:
      break
    block = render(experiences[i])
    candidate = _render_block(header, blocks + [block])
    n = int(count_tokens(candidate))
    if n <= budget:
      chosen.append(i)
      blocks.append(block)
      text, num_tokens = candidate, n
  return MemoryContext(experiences=tuple(experiences[i] for i in chosen),
                       scores=tuple(float(scores_N[i]) for i in chosen), text=text,
                       num_tokens=num_tokens)
