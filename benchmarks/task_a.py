"""The VGPO paper's Table 1 (Task A: F0 variance, expressiveness) at small scale, on the bundled ARDM.

Rows: Base, Best-of-16 and Best-of-64 by the F0-variance reward, value-guided sampling at several scales, ARDM-DPO
and VGPO at a few KL weights. Columns: F0V (Hz, the reward, measured on the decoded audio), WER (%, whisper tiny.en),
SIM (Resemblyzer cosine to the voice prompt's utterance), KL to the base model, and the wall-clock cost of each
method. The prompts are test sentences in test voices of the espeak corpus (held out from every training step).
How the harness counts cost and KL: `benchmarks/paper_tables.py`.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/task_a.py                       # the table in docs/results.md
    python benchmarks/task_a.py --guidance_scales 0.5 2 --w_kls 0.25    # other rows
    python benchmarks/task_a.py --replot                                # re-render table and plot from the JSON
    python benchmarks/task_a.py --quick                                 # a 2-minute smoke run of every row kind

Writes `benchmarks/results/task_a.json`, `task_a.md` and `task_a.png` (reward against cost).
"""

from __future__ import annotations

import argparse
import sys

from paper_tables import PaperTable, add_common_arguments, parse_table_args, replot

from ardm_trl.rewards import F0VarianceReward

COLUMNS = [("f0v", "F0V (Hz) ↑", ".2f"), ("wer", "WER (%) ↓", ".1f"), ("sim", "SIM ↑", ".3f")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "task_a")
    parser.add_argument("--best_of", type=int, nargs="*", default=[16, 64], help="K of the Best-of-K rows.")
    parser.add_argument("--guidance_scales", type=float, nargs="*", default=[0.25, 1.0, 4.0], help="λ of Alg. 2.")
    parser.add_argument("--w_kls", type=float, nargs="*", default=[0.25, 1.0], help="KL weights of the VGPO rows.")
    args = parse_table_args(parser, argv, best_of=[2], guidance_scales=[1.0], w_kls=[1.0])
    if args.replot:
        print(replot(args.output_json, COLUMNS))
        return

    metrics = ("f0v", "wer", "sim")
    table = PaperTable(args, "f0", lambda codec: F0VarianceReward(codec=codec, unvoiced_value=0.0), metrics)
    table.evaluate_model("Base", table.policy)
    for k in args.best_of:
        table.best_of_k(f"Best-of-{k}", table.reward, k)
    for scale in args.guidance_scales:
        table.guided(scale)
    table.dpo()
    for w_kl in args.w_kls:
        table.vgpo(f"VGPO (w_KL={w_kl:g})", w_kl)
    command = "python benchmarks/task_a.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table.write("Task A: F0 variance (VGPO paper, Table 1)", COLUMNS, command.strip()))


if __name__ == "__main__":
    main()
