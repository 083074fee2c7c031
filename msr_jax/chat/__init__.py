"""The real-model (chat) domain: conversation JSONL as memories, a model writing the
collisions, a verifier and LLM judges, and the real-model probes (`dream_domain.py`)."""
