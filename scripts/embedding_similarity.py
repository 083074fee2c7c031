"""Mean pairwise cosine similarity of a Townworld checkpoint's input embeddings, by kind
of token: how far tokens of one kind have collapsed towards a common direction.

  python scripts/embedding_similarity.py [CHECKPOINT ...]

Groups: the 64 visitors (the names in notes), the first 64 people, every item, weather,
pet and city. Random vectors of this width have a cosine near 0; tokens that binding
uses as keys need to stay apart.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from safetensors.numpy import load_file

from msr_jax.world import checkpoint, lexicon, tokenizer
from msr_jax.world.pretrain import WORLD_FILE
from msr_jax.world.world import World

EMBEDDING = "embed.embedding"


def mean_cosine(embedding_VxD: np.ndarray, ids: list[int]) -> float:
  rows_NxD = embedding_VxD[ids]
  rows_NxD = rows_NxD / np.linalg.norm(rows_NxD, axis=1, keepdims=True)
  cosine_NxN = rows_NxD @ rows_NxD.T
  return float(cosine_NxN[~np.eye(len(ids), dtype=bool)].mean())


def run_file(path: str, name: str) -> str:
  """`path/name`, or the run folder's where `path` is its `stage1` (which has no world or
  tokenizer files of its own)."""
  here = os.path.join(path, name)
  return here if os.path.exists(here) else os.path.join(os.path.dirname(path.rstrip("/")), name)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("checkpoints", nargs="*", default=["assets/townworld_base"])
  args = parser.parse_args()
  for path in args.checkpoints:
    settings = checkpoint.read_json(run_file(path, WORLD_FILE), "no world settings")
    world = World.build(settings["world_seed"], num_people=settings["num_people"])
    tok = tokenizer.load(run_file(path, checkpoint.TOKENIZER))
    groups = {"visitors": world.visitors, "people": world.people[:64],
              "items": lexicon.ITEMS, "weathers": lexicon.WEATHERS,
              "pets": lexicon.VALUES["pet"], "cities": lexicon.VALUES["city"]}
    embedding_VxD = load_file(os.path.join(path, "params.safetensors"))[EMBEDDING]
    cells = [f"{name} {mean_cosine(embedding_VxD, [tok.token_to_id(w) for w in words]):.3f}"
             for name, words in groups.items()]
    print(f"{path}: " + " | ".join(cells))


if __name__ == "__main__":
  main()
