#!/usr/bin/env python3
"""The reliability campaign: one command that attacks a real node the ways
an independent campaign did, and writes a report of what was lost (the
figure must be 0).

    tests/chaos/campaign.py            # full: 20 crash trials per phase, every fault and
                                       # hostile case, a 10-minute soak (about 40 minutes)
    tests/chaos/campaign.py --quick    # 2 trials per phase, every case, a 1-minute soak (CI)
    tests/chaos/campaign.py --parts trials,soak --trials 5 --soak-minutes 2

Parts: crash trials (trials.py), faults (faults.py), hostile peers
(hostile.py), soak (soak.py). Every peer is started by the campaign on
loopback (and in network namespaces it creates) with TCP_NODELAY=1. Writes
<out>/<date>-<host>-campaign.{json,md} (bench/results by default, beside the
benchmark reports) and exits non-zero when anything was lost or any check
failed.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import peers  # noqa: E402  (puts bench/ on the path)
from common import write_report  # noqa: E402

PARTS = ["trials", "faults", "hostile", "soak"]


def arguments():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the short form CI runs")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts, comma-separated")
    parser.add_argument("--trials", type=int, help="crash trials per phase (20; quick 2)")
    parser.add_argument("--instances", type=int, default=200, help="instances per trial study")
    parser.add_argument("--soak-minutes", type=float, help="soak length (10; quick 1)")
    parser.add_argument("--only", default="", help="faults or hostile cases whose name has this")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the time)")
    parser.add_argument("--build", default=os.path.join(peers.ROOT, "build"))
    parser.add_argument("--out", default=os.path.join(peers.ROOT, "bench", "results"))
    parser.add_argument("--keep", action="store_true", help="keep every trial's folder")
    args = parser.parse_args()
    args.binary = os.path.join(args.build, "main", "dcmstreams")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"campaign: {args.binary} does not exist; run scripts/setup.sh first")
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        sys.exit(f"campaign: unknown part(s) {sorted(unknown)}; the parts are {PARTS}")
    if args.trials is None:
        args.trials = 2 if args.quick else 20
    if args.soak_minutes is None:
        args.soak_minutes = 1 if args.quick else 10
    if args.seed is None:
        args.seed = int(time.time())
    return args


def log(text):
    print(text, flush=True)


def markdown(summary, data):
    lines = ["| part | runs | failed | lost |", "|---|---|---|---|"]
    for part, figures in summary.items():
        lines.append(f"| {part} | {figures['runs']} | {figures['failed']} | {figures['lost']} |")
    text = "\n".join(lines)
    if "trials" in data:
        text += "\n\n## Crash trials\n\n| phase | trials | acknowledged | lost | changed | " \
                "undelivered | sent twice | problems |\n|---|---|---|---|---|---|---|---|\n"
        for phase in sorted({row["phase"] for row in data["trials"]}):
            rows = [row for row in data["trials"] if row["phase"] == phase]
            text += (f"| {phase} | {len(rows)} | {sum(r['acknowledged'] for r in rows)} | "
                     f"{sum(r['lost'] for r in rows)} | {sum(r['changed'] for r in rows)} | "
                     f"{sum(r['undelivered'] for r in rows)} | "
                     f"{sum(r['repeated'] for r in rows)} | "
                     f"{sum(1 for r in rows if r['problems'])} |\n")
    for part in ("faults", "hostile"):
        if part in data:
            text += f"\n\n## {'Faults' if part == 'faults' else 'Hostile peers'}\n\n" \
                    "| case | must | observed | ok |\n|---|---|---|---|\n"
            for case in data[part]:
                text += (f"| {case['name']} | {case['must']} | {case['observed']} | "
                         f"{'yes' if case['ok'] else '**no**'} |\n")
    if "soak" in data:
        soak = data["soak"]
        text += ("\n\n## Soak\n\n" + f"{soak['associations']} associations for "
                 f"{soak['minutes']} min: {soak['stored']} instances stored, "
                 f"{soak['failed']} failed; RSS middle third {soak['rss_middle_mb']:.1f} MB, "
                 f"last third {soak['rss_last_mb']:.1f} MB; descriptors "
                 f"{soak['descriptors']}; threads {soak['threads']}; journal segments "
                 f"{soak['journal_segments']}; job creation's backlog at most "
                 f"{soak.get('backlog_peak', 0):.0f} instances, answers waited "
                 f"{soak.get('ingest_wait_s', 0)} s in all; "
                 f"{'ok' if soak['ok'] else '**not ok**: ' + '; '.join(soak['problems'])}\n")
    problems = [p for part in data.values() if isinstance(part, list)
                for row in part for p in row.get("problems", [])]
    problems += data.get("soak", {}).get("problems", [])
    if problems:
        text += "\n\n## Problems\n\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    return text


def main():
    args = arguments()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="dcmstreams-campaign-")
    log(f"campaign: seed {args.seed}, working in {work}")
    data, summary = {"seed": args.seed, "quick": args.quick}, {}
    started = time.time()
    try:
        if "trials" in args.parts:
            import trials
            rows = trials.run(args.binary, work, args.trials, args.instances, rng, log)
            data["trials"] = rows
            summary["crash trials"] = {"runs": len(rows),
                                       "failed": sum(1 for r in rows if r["problems"]),
                                       "lost": sum(r["lost"] for r in rows)}
        for part, title in (("faults", "faults"), ("hostile", "hostile peers")):
            if part in args.parts:
                cases = __import__(part).run(args.binary, work, args.only, log)
                data[part] = cases
                summary[title] = {"runs": len(cases),
                                  "failed": sum(1 for c in cases if not c["ok"]),
                                  "lost": sum(c.get("lost", 0) for c in cases)}
        if "soak" in args.parts:
            import soak
            result = soak.run(args.binary, work, args.soak_minutes, log)
            data["soak"] = result
            summary["soak"] = {"runs": 1, "failed": 0 if result["ok"] else 1,
                               "lost": result["failed"]}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    data["summary"] = summary
    data["seconds"] = round(time.time() - started)
    lost = sum(s["lost"] for s in summary.values())
    failed = sum(s["failed"] for s in summary.values())
    preamble = (f"`tests/chaos/campaign.py{' --quick' if args.quick else ''}`, seed {args.seed}, "
                f"{data['seconds']} s. **Lost: {lost}.** Failed checks: {failed}.")
    write_report(args.out, "campaign", "Reliability campaign", preamble,
                 markdown(summary, data), data)
    log(f"campaign: lost {lost}, failed {failed}")
    return 1 if lost or failed else 0


if __name__ == "__main__":
    sys.exit(main())
