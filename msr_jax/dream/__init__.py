"""The dream loop: memory walks -> collisions -> answers with the fast store in context ->
judges -> filtered behavioural cloning -> consolidation, over a domain (`dream/domain.py`;
Townworld's is `msr_jax.world.dream_domain`). See docs/dream.md."""

# No name here shadows a module of the package (`collide` stays the module).
from msr_jax.dream.collide import Scenario, blend_prompt, collide_walks
from msr_jax.dream.consolidate import DreamSetup, run_consolidation
from msr_jax.dream.domain import DreamDomain
from msr_jax.dream.filter import dream_record, dream_records
from msr_jax.dream.generate import AdaptiveTemperature, Response, answer_scenarios
from msr_jax.dream.judges import Judge, LLMJudge, SelfConsistencyJudge, Verdict

__all__ = [
    "AdaptiveTemperature", "DreamDomain", "DreamSetup", "Judge", "LLMJudge", "Response",
    "Scenario", "SelfConsistencyJudge", "Verdict", "answer_scenarios", "blend_prompt",
    "collide_walks", "dream_record", "dream_records", "run_consolidation",
]
