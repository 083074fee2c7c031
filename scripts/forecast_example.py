"""Measures the real-model example (configs/smollm2_forecast.py) and prints its table.

For each variant (context-frozen / full backprop x AdamW / APOLLO-Mini; LoRA; one
regulariser: KL to the base, EWC, L2-SP), in its own process (so peak memory is the
variant's): train with `train_loop` as `msr train` does, then score behaviour on the
held-out prompts (greedy, the example's regex), retention (closed-book facts, perplexity,
KL to the base) and context recall, before (the first variant run) and after. The
context-frozen AdamW and the LoRA runs are exported with `msr export` and reloaded in
transformers: greedy answers and logits are compared with ours (LoRA's unmerged).

  python scripts/forecast_example.py --out /tmp/forecast            # every variant
  python scripts/forecast_example.py --out /tmp/forecast --variants cf_adamw,cf_lora
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = {"cf_adamw": "", "full_adamw": "full", "cf_apollo_mini": "apollo_mini",
            "full_apollo_mini": "full_apollo_mini", "cf_lora": "lora", "cf_kl": "kl",
            "cf_ewc": "ewc", "cf_l2sp": "l2sp"}
EXPORTED = ("cf_adamw", "cf_lora")   # exported and checked in transformers
CONFIG = "configs/smollm2_forecast.py"


def _prompts():
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs.smollm2_forecast import BEHAVIOUR, HELDOUT
  from msr_jax.eval.real_probes import read_set
  return [row["prompt"] for row in read_set(HELDOUT, ("prompt",))], BEHAVIOUR


def _scores(graphdef, params, tokenizer, base_params=None) -> dict:
  from msr_jax.eval import behaviour_probes, real_probes
  prompts, pattern = _prompts()
  pad = tokenizer.pad_token_id or 0
  probes = real_probes.build(tokenizer, pad_id=pad)
  summary = real_probes.score(graphdef, params, probes, pad, base_params)
  behaviour = behaviour_probes.behaviour_score(graphdef, params, tokenizer, prompts,
                                               behaviour_probes.judge_from_spec(pattern))
  return {**summary, "behaviour": behaviour}


def _label(config) -> str:
  parts = [config.train.mode, config.optim.name, f"lr {config.optim.learning_rate:g}"]
  if config.lora.rank:
    parts.append(f"LoRA r{config.lora.rank}")
  parts += [f"{t} {config.regularizer[t]:g}" for t in ("l2_sp", "ewc", "kl_to_base")
            if config.regularizer[t]]
  return ", ".join(parts)


def run_variant(name: str, out_dir: str, before: bool = False) -> dict:
  from msr_jax.checkpoints import loader
  from msr_jax.runner.config import load_config
  from msr_jax.train.loop import train_loop
  from msr_jax.train.state import pure_params
  arg = VARIANTS[name]
  config = load_config(f"{CONFIG}:{arg}" if arg else CONFIG)
  config.run_dir = os.path.join(out_dir, name)
  config.progress = False
  base = loader.load(config.model.checkpoint)
  base_params = pure_params(base.params)
  result = {"variant": name, "mode": config.train.mode, "optimizer": config.optim.name,
            "steps": int(config.train.steps), "label": _label(config)}
  if before:
    result["before"] = _scores(base.graphdef, base_params, base.tokenizer)
  began = time.time()
  trained = train_loop(config)
  result["train_s"] = time.time() - began
  from msr_jax.model.lora import merge_lora
  merged_graphdef, merged = merge_lora(trained.graphdef, trained.state.params)
  result["after"] = _scores(merged_graphdef, merged, base.tokenizer, base_params)
  result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  result["summary"] = {k: v for k, v in trained.summary.items() if k != "run_dir"}
  if name in EXPORTED:
    result["export"] = check_export(config.run_dir, os.path.join(out_dir, f"{name}_hf"),
                                    trained.graphdef, trained.state.params, base.tokenizer)
  return result


def check_export(run_dir, hf_dir, graphdef, params, tokenizer) -> dict:
  """`msr export` to an HF folder; transformers' greedy answers and logits against ours."""
  import numpy as np
  import torch
  import transformers
  from msr_jax import cli
  from msr_jax.eval import behaviour_probes
  from msr_jax.model import forward
  assert cli.main(["export", run_dir, "--out", hf_dir]) == 0
  model = transformers.AutoModelForCausalLM.from_pretrained(
      hf_dir, local_files_only=True, torch_dtype=torch.float32).eval()
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
  prompts, pattern = _prompts()
  ours = behaviour_probes.behaviour_score(graphdef, params, tokenizer, prompts[:4],
                                          behaviour_probes.judge_from_spec(pattern))["answers"]
  theirs, dlogit = [], 0.0
  for prompt in prompts[:4]:
    ids = hf_tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                           add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)["input_ids"]
    with torch.inference_mode():
      new = model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]
      theirs.append(hf_tokenizer.decode(new, skip_special_tokens=True).strip())
      logits_theirs = model(ids).logits.float().numpy()
    logits_ours, _ = forward(graphdef, params, ids.numpy().astype(np.int32))
    dlogit = max(dlogit, float(np.abs(np.asarray(logits_ours) - logits_theirs).max()))
  return {"same_greedy_text": ours == theirs, "ours": ours, "transformers": theirs,
          "max_abs_dlogit": dlogit}


def table(results: list[dict]) -> str:
  before = next(r["before"] for r in results if "before" in r)
  rows = ["| run | behaviour (held-out) | facts | perplexity | KL to base | context recall | "
          "train s | peak RSS GiB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

  def row(name, s, r=None):
    kl = s["retention"].get("kl_to_base")
    kl_text = "-" if kl is None else f"{kl:.4f}"
    train_s = "-" if r is None else f"{r['train_s']:.0f}"
    rss = "-" if r is None else f"{r['peak_rss_gib']:.1f}"
    rows.append(f"| {name} | {s['behaviour']['acc']:.2f} | {s['retention']['facts_acc']:.3f} "
                f"| {s['retention']['perplexity']:.1f} | {kl_text} | "
                f"{s['context']['recall_acc']:.3f} | {train_s} | {rss} |")
  row("base (SmolLM2-135M-Instruct)", before)
  for r in results:
    row(r.get("label", f"{r['mode']}, {r['optimizer']}"), r["after"], r)
  return "\n".join(rows)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--only", default=None, choices=sorted(VARIANTS))
  parser.add_argument("--before", action="store_true",
                      help="with --only: score the base model too")
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help="comma-separated variants to run (default: all)")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  if args.only:
    result = run_variant(args.only, args.out, args.before)
    with open(os.path.join(args.out, f"{args.only}.json"), "w") as f:
      json.dump(result, f, indent=1)
    return 0
  results = []
  names = args.variants.split(",")
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown:
    parser.error(f"unknown variants {unknown} (have {sorted(VARIANTS)})")
  for i, name in enumerate(names):
    subprocess.run([sys.executable, __file__, "--out", args.out, "--only", name]
                   + (["--before"] if i == 0 else []), check=True)
    with open(os.path.join(args.out, f"{name}.json")) as f:
      results.append(json.load(f))
  print(table(results))
  for r in results:
    if "export" in r:
      print(f"\nexport of {r['variant']}: transformers' greedy text equals ours on 4 "
            f"held-out prompts: {r['export']['same_greedy_text']}; max |dlogit| "
            f"{r['export']['max_abs_dlogit']:.2e}")
  for r in results:
    print(f"{r['variant']}: {r['after']['behaviour']['answers'][:2]}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
