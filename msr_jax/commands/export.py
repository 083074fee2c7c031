"""`msr export SOURCE --out DIR [--format hf|native] [--step N] [--dtype D]`.

SOURCE is a `msr train` run folder (its newest checkpoint, or `--step`) or anything
`msr_jax.load` reads (an HF folder, a GGUF file, a checkpoint folder, a bundled name).
`hf` writes a folder `transformers.AutoModelForCausalLM.from_pretrained` loads, with the
tokenizer and its chat template; `native` writes this project's checkpoint folder.
"""

from __future__ import annotations

import os


def register(subparsers) -> None:
  parser = subparsers.add_parser("export", help="a run or a checkpoint to an HF or native folder")
  parser.add_argument("source", help="a run folder, or a checkpoint msr_jax.load reads")
  parser.add_argument("--out", required=True, help="the folder to write (new or empty)")
  parser.add_argument("--format", default="hf", choices=("hf", "native"))
  parser.add_argument("--step", type=int, default=None,
                      help="a run's checkpoint step (default: its newest)")
  parser.add_argument("--dtype", default=None,
                      help="stored tensor dtype of an HF export (default: the model's)")
  parser.set_defaults(func=run)


def run(args) -> int:
  from msr_jax.train import export, run_folder

  if os.path.isdir(args.source) and os.path.exists(
      os.path.join(args.source, run_folder.CONFIG_FILE)) and os.path.isdir(
          os.path.join(args.source, "checkpoints")):
    trained = export.restore_run(args.source, args.step)
    what = f"{args.source} at step {trained.step}"
  else:
    if args.step is not None:
      raise export.ExportError(f"--step: {args.source} is a checkpoint, not a run folder")
    trained = export.load_checkpoint(args.source)
    what = args.source
  out = export.export(trained, args.out, args.format, args.dtype)
  print(f"{what} -> {out} ({args.format})")
  return 0
