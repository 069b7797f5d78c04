"""End-to-end benchmark: the launched graph on a demo bag; writes out/bench/e2e.json.

The bag is built from five real Korean speakers (``../shared/data/speech/korean``, the graph's
default recogniser, Whisper) when that folder is there, else it is the synthetic demo bag (vosk);
`voices` says which. Keys: e2e_ms_p50/p95 (speech end as the VAD marks it → first TTS audio chunk
published), one stage_ms_p50_<stage> (and _p95) per stage from the messages' timestamps, heard vs
said CER (real voices), peak RSS per node (`node_peak_rss_mb`) and peak_rss_mb_total.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agechat_tools.graph_run import (
    REPO,
    VOICES_E2E_BAG,
    VOICES_E2E_OPTIONS,
    ensure_demo_bag,
    run_graph_on_bag,
)
from agechat_ros.files import korean_speech_manifest
from agechat_tools.report import heard_vs_said_cer, latency_summary, read_run


def main(argv=None) -> int:
    """Run the graph on the demo bag and write the benchmark JSON; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=REPO / 'out' / 'bench' / 'e2e.json')
    parser.add_argument('--work', type=Path, default=REPO / 'out' / 'bench' / 'e2e_run')
    parser.add_argument(
        '--synthetic', action='store_true', help='use the synthetic demo bag even with real voices'
    )
    args = parser.parse_args(argv)
    voices = korean_speech_manifest()
    if voices.is_file() and not args.synthetic:
        bag = ensure_demo_bag(VOICES_E2E_BAG, voices=voices.parent, **VOICES_E2E_OPTIONS)
    else:
        bag = ensure_demo_bag(REPO / 'out' / 'cache' / 'demo_bag')
    script = json.loads((bag / 'script.json').read_text())
    run = run_graph_on_bag(bag, args.work, show_progress=False)
    data = read_run(run.output_bag, script, run.replay_start_ns)
    summary = latency_summary(data.turns)
    result = {
        'voices': script.get('voices', 'synthetic'),
        'stt_cer_heard_vs_said': heard_vs_said_cer(data.turns),
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
    result['node_peak_rss_mb'] = rss
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
