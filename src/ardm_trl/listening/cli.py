"""Command line of the CMOS listening tests: `python -m ardm_trl.listening build|serve|analyze ...`."""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict

from .analyze import analyze_cmos, cmos_table
from .build import build_cmos_test, items_from_folders, load_items, load_texts
from .page import TEST_TYPES
from .server import CMOSServer

__all__ = ["main"]

_EPILOG = """\
examples:
  # from a manifest (JSON list or JSON lines of {"id", "text", "audio_a_path", "audio_b_path", "reference_path"};
  # audio_a_path is the system under test, audio_b_path the baseline; relative paths are from the manifest's folder)
  python -m ardm_trl.listening build --manifest items.jsonl --output-dir cmos_n --test-type naturalness
  # from two sample folders paired by id (texts: JSON object, JSON lines of {"id", "text"}, or id<TAB>text lines)
  python -m ardm_trl.listening build --texts texts.tsv --system-dir vgpo/ --baseline-dir base/ \\
      --reference-dir prompts/ --output-dir cmos_s --test-type similarity --system-name VGPO --baseline-name Base
  python -m ardm_trl.listening serve cmos_n --port 8000     # open http://127.0.0.1:8000/ ; Ctrl-C to stop
  python -m ardm_trl.listening analyze cmos_n cmos_s        # markdown table of CMOS ± 95% CI
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ardm_trl.listening", description=__doc__, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="Build a test folder (page, audio, hidden key).",
                                description="Build a CMOS test folder: index.html, audio/ and the hidden key.json.")
    source = build.add_argument_group("items (a manifest, or --texts with sample folders)")
    source.add_argument("--manifest", help="JSON list or JSON-lines file of items.")
    source.add_argument("--texts", help="Item id -> text: .json object, .jsonl of {id, text}, or id<TAB>text lines.")
    source.add_argument("--system-dir", help="Folder of the system under test's samples.")
    source.add_argument("--baseline-dir", help="Folder of the baseline's samples.")
    source.add_argument("--reference-dir", help="Folder of the prompt (reference) audio.")
    source.add_argument("--system-pattern", default="{id}.wav", help="System file name (default: %(default)s).")
    source.add_argument("--baseline-pattern", default="{id}.wav", help="Baseline file name (default: %(default)s).")
    source.add_argument("--reference-pattern", default="{id}.wav", help="Reference file name (default: %(default)s).")
    build.add_argument("--output-dir", required=True, help="Folder to build the test in.")
    build.add_argument("--test-type", default="naturalness", choices=list(TEST_TYPES),
                       help="naturalness (N-CMOS), similarity (S-CMOS, needs references) or expressiveness (E-CMOS).")
    build.add_argument("--seed", type=int, default=0, help="Seed of the A/B sides and item order (default: 0).")
    build.add_argument("--title", help="Page heading (default: the paper's title for the test type).")
    build.add_argument("--system-name", default="system", help="Name of the system under test (key only).")
    build.add_argument("--baseline-name", default="baseline", help="Name of the baseline (key only).")
    build.add_argument("--no-shuffle", action="store_true", help="Keep the items in the given order.")
    build.add_argument("--overwrite", action="store_true", help="Replace a test (and its answers) in --output-dir.")

    serve = commands.add_parser("serve", help="Serve a test folder and collect answers.",
                                description="Serve the page and audio; append each submission to answers.jsonl.")
    serve.add_argument("test_dir", help="A folder made by `build`.")
    serve.add_argument("--host", default="127.0.0.1", help="Interface (default: %(default)s, this machine only).")
    serve.add_argument("--port", type=int, default=8000, help="Port; 0 picks a free one (default: %(default)s).")
    serve.add_argument("--answers", help="Answers file (default: TEST_DIR/answers.jsonl).")

    analyze = commands.add_parser("analyze", help="CMOS with a confidence interval from the answers.",
                                  description="Un-swap the answers with the key and report CMOS ± the t interval "
                                              "(scores from the system under test's side: +2 much better ... -2).")
    analyze.add_argument("test_dirs", nargs="+", help="Test folders (one table row each).")
    analyze.add_argument("--confidence", type=float, default=0.95, help="Interval level (default: %(default)s).")
    analyze.add_argument("--json", action="store_true", help="Print JSON instead of a markdown table.")
    return parser


def _build_items(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    if args.manifest:
        if args.texts or args.system_dir or args.baseline_dir:
            parser.error("give either --manifest or --texts/--system-dir/--baseline-dir, not both")
        return load_items(args.manifest)
    if not (args.texts and args.system_dir and args.baseline_dir):
        parser.error("give --manifest, or --texts with --system-dir and --baseline-dir")
    return items_from_folders(load_texts(args.texts), args.system_dir, args.baseline_dir, args.reference_dir,
                              args.system_pattern, args.baseline_pattern, args.reference_pattern)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # `serve` logs each saved submission; the other commands print their result.
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING, format="%(message)s")
    try:
        if args.command == "build":
            test = build_cmos_test(
                _build_items(args, parser), args.output_dir, test_type=args.test_type, seed=args.seed,
                title=args.title, system_name=args.system_name, baseline_name=args.baseline_name,
                shuffle_items=not args.no_shuffle, overwrite=args.overwrite)
            print(f"Built {test.num_items} items in {test.output_dir}; "
                  f"serve it with: python -m ardm_trl.listening serve {test.output_dir}")
        elif args.command == "serve":
            server = CMOSServer(args.test_dir, host=args.host, port=args.port, answers_path=args.answers)
            print(f"Open {server.url} in a browser (answers -> {server.answers_path}); Ctrl-C to stop.", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
        else:
            results = [analyze_cmos(d, confidence=args.confidence) for d in args.test_dirs]
            if args.json:
                rows = [{k: None if isinstance(v, float) and math.isnan(v) else v  # strict JSON: NaN -> null
                         for k, v in asdict(r).items() if k != "scores"} for r in results]
                print(json.dumps(rows, indent=2))
            else:
                print(cmos_table(results))
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    return 0
