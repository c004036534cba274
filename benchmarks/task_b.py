"""The VGPO paper's Table 3 (Task B: CTC likelihood of hard, repetitive sentences) at small scale, on the bundled ARDM.

Rows: Base, Best-of-8 by WER and by CTC NLL, value-guided sampling, ARDM-DPO, and VGPO plain, with online value
updates, and with adversarial distribution matching (ADM). Columns: CTC NLL per phoneme (hama, the reward's
evaluator), CER (%, whisper tiny.en), SIM (Resemblyzer cosine to the voice prompt's utterance), KL to the base model,
and the wall-clock cost of each method. Prompts: 90% "hard" repetitive sentences; evaluation on test sentences in
test voices. The value model learns the group-normalised rewards of the base model's own samples (Sec. 4.3). How the
harness counts cost and KL: `benchmarks/paper_tables.py`.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/task_b.py                 # the table in docs/results.md
    python benchmarks/task_b.py --w_kl 0.5 --online_steps 4       # other settings
    python benchmarks/task_b.py --replot                          # re-render table and plot from the JSON
    python benchmarks/task_b.py --quick                           # a 2-minute smoke run of every row kind

Writes `benchmarks/results/task_b.json`, `task_b.md` and `task_b.png` (reward against cost).
"""

from __future__ import annotations

import argparse
import sys

from paper_tables import PaperTable, add_common_arguments, parse_table_args, replot

from ardm_trl.rewards import CTCLogLikelihoodReward, ErrorRateReward

COLUMNS = [("ctc_nll", "NLL ↓", ".3f"), ("cer", "CER (%) ↓", ".1f"), ("sim", "SIM ↑", ".3f")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "task_b")
    parser.add_argument("--best_of", type=int, default=8, help="K of the Best-of-K rows.")
    parser.add_argument("--guidance_scales", type=float, nargs="*", default=[1.0], help="λ of Alg. 2.")
    parser.add_argument("--w_kl", type=float, default=1.0, help="KL weight of the VGPO rows.")
    parser.add_argument("--online_steps", type=int, default=2, help="Value / discriminator steps per policy step.")
    parser.set_defaults(max_patches=64)  # ~6 s: a truncated sample of a long sentence scores a poor CTC likelihood
    # quick: 24 patches, since shorter samples cannot align to the text and get no CTC reward
    args = parse_table_args(parser, argv, max_patches=24, best_of=2, guidance_scales=[1.0], online_steps=1)
    if args.replot:
        print(replot(args.output_json, COLUMNS))
        return

    metrics = ("ctc_nll", "cer", "sim")
    table = PaperTable(args, "ctc", lambda codec: CTCLogLikelihoodReward(codec=codec), metrics)
    table.evaluate_model("Base", table.policy)
    table.best_of_k(f"Best-of-{args.best_of} (WER)", ErrorRateReward(codec=table.codec, metric="wer"), args.best_of)
    table.best_of_k(f"Best-of-{args.best_of} (NLL)", table.reward, args.best_of)
    for scale in args.guidance_scales:
        table.guided(scale)
    table.dpo()
    common = dict(group_normalize=True)
    table.vgpo("VGPO", args.w_kl, **common)
    table.vgpo("VGPO + online value update", args.w_kl, online_value_update=True, value_steps=args.online_steps,
               **common)  # fmt: skip
    table.vgpo("VGPO + online value update + ADM", args.w_kl, online_value_update=True, value_steps=args.online_steps,
               use_adm=True, discriminator_steps=args.online_steps, **common)  # fmt: skip
    command = "python benchmarks/task_b.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table.write("Task B: CTC likelihood on hard sentences (VGPO paper, Table 3)", COLUMNS, command.strip()))


if __name__ == "__main__":
    main()
