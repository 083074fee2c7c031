"""Two-stage memory: the episodic buffer and prompt builder (fast), the memory graph (slow).

See docs/memory.md.
"""

from msr_jax.memory.consolidate import consolidate
from msr_jax.memory.episodic import EpisodicBuffer, Experience
from msr_jax.memory.graph import EDGE_TYPES, MemoryGraph, MemoryGraphError, Neighbor, Node
from msr_jax.memory.prompt_builder import (MemoryContext, RelevanceWeights,
                                           build_memory_context, relevance_scores)
from msr_jax.memory.record_json import record_from_json, record_text

__all__ = [
    "EDGE_TYPES", "EpisodicBuffer", "Experience", "MemoryContext", "MemoryGraph",
    "MemoryGraphError", "Neighbor", "Node", "RelevanceWeights", "build_memory_context",
    "consolidate", "record_from_json", "record_text", "relevance_scores",
]
