"""End-to-end benchmark: the launched graph on the demo bag; writes out/bench/e2e.json.

Keys: e2e_ms_p50/p95 (speech end as the VAD marks it → first TTS audio chunk published), one
stage_ms_p50_<stage> (and _p95) per stage from the messages' timestamps, peak RSS per node and
peak_rss_mb_total.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agechat_tools.graph_run import REPO, ensure_demo_bag, run_graph_on_bag
from agechat_tools.report import read_run, latency_summary


def main(argv=None) -> int:
    """Run the graph on the demo bag and write the benchmark JSON; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=REPO / 'out' / 'bench' / 'e2e.json')
    parser.add_argument('--work', type=Path, default=REPO / 'out' / 'bench' / 'e2e_run')
    args = parser.parse_args(argv)
    bag = ensure_demo_bag(REPO / 'out' / 'cache' / 'demo_bag')
    script = json.loads((bag / 'script.json').read_text())
    run = run_graph_on_bag(bag, args.work, show_progress=False)
    data = read_run(run.output_bag, script, run.replay_start_ns)
    summary = latency_summary(data.turns)
    result = {
        'turns': summary['turns'],
        'scripted_turns': len(script['turns']),
        'e2e_ms_p50': summary.get('e2e_ms_p50'),
        'e2e_ms_p95': summary.get('e2e_ms_p95'),
    }
    for key, value in summary.items():
        if key.endswith('_ms_p50') or key.endswith('_ms_p95'):
            stage, _, q = key.rpartition('_ms_')
            if stage != 'e2e':
                result[f'stage_ms_{q}_{stage}'] = value
    rss = {name: info.get('peak_rss_mb') for name, info in run.launch_status.items()}
    result['peak_rss_mb'] = rss
    result['peak_rss_mb_total'] = sum(v for v in rss.values() if v)
    pss = {name: info.get('peak_pss_mb') for name, info in run.launch_status.items()}
    result['peak_pss_mb'] = pss
    result['peak_pss_mb_total'] = sum(v for v in pss.values() if v)
    result['node_restarts'] = sum(
        max(0, info.get('starts', 1) - 1) for info in run.launch_status.values()
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
