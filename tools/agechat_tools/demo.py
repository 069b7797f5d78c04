"""`make demo`: run the whole agechat graph on the bundled demo bag and write a readable report.

    python -m agechat_tools.demo [--out out/demo] [--rate 1.0] [--voices DIR [--turns 5]]
                                 [--web [--web-port 8765]]

Without --voices the bag's voices are synthetic (espeak-ng, made offline) and age_node runs vosk
(see graph_run.launch_args_for); with --voices DIR (a folder with manifest.csv: path,
transcript[, speaker_id, age_group]; `make demo VOICES=DIR`) the turns are real recordings, the
graph runs its default recogniser (Whisper) and the report gives said vs heard with CER per turn.

Output in out/demo/: report.html (open it), report.md, avatar.mp4, latency.png, emotion.png,
turn_<n>.png, turns.json, output_bag/ (everything the graph published), logs/ (one per node).

With --web (`make demo WEB=1`) the graph also runs avatar_node's web_view: open the printed URL
(http://127.0.0.1:8765/) to watch the replayed conversation live and type to the agent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agechat_tools.graph_run import REPO, ensure_demo_bag, launch_args_for, run_graph_on_bag
from agechat_tools.processes import sigterm_raises_keyboard_interrupt
from agechat_tools.report import write_report


def log(text: str) -> None:
    """Print a progress line of the demo."""
    print(f'[demo] {text}', flush=True)


def main(argv=None) -> int:
    """Run the demo; Ctrl-C or SIGTERM stops the graph cleanly and writes no report."""
    sigterm_raises_keyboard_interrupt()
    try:
        return run_demo(argv)
    except KeyboardInterrupt:
        log('stopped on request: the graph is down; no report was written')
        return 0


def run_demo(argv=None) -> int:
    """Generate the bag if needed, run the graph on it and write the report.

    Return 0 when turns were heard, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=REPO / 'out' / 'demo')
    parser.add_argument(
        '--bag',
        type=Path,
        default=REPO / 'out' / 'cache' / 'demo_bag',
        help='input bag (the demo bag is generated here when missing)',
    )
    parser.add_argument('--rate', type=float, default=1.0, help='replay speed factor')
    parser.add_argument(
        '--voices',
        type=Path,
        help='folder with manifest.csv of real recordings: the bag is built from them',
    )
    parser.add_argument('--turns', type=int, default=5, help='recordings taken from --voices')
    parser.add_argument(
        '--web',
        action='store_true',
        help="also start the browser view (avatar_node's web_view) and print its URL",
    )
    parser.add_argument(
        '--web-port', type=int, default=8765, help='port of the browser view on 127.0.0.1'
    )
    args = parser.parse_args(argv)
    if not 1 <= args.web_port <= 65535:
        parser.error(f'--web-port {args.web_port} is not a TCP port (1..65535)')
    started = time.monotonic()
    if args.voices:
        if not (args.voices / 'manifest.csv').is_file():
            log(f'--voices {args.voices}: no manifest.csv there (columns path, transcript)')
            return 2
        bag = ensure_demo_bag(
            REPO / 'out' / 'cache' / 'voices_bag', log, voices=args.voices, turns=args.turns
        )
    elif args.bag == parser.get_default('bag'):
        bag = ensure_demo_bag(args.bag, log)
    else:
        bag = args.bag
    script_path = bag / 'script.json'
    script = json.loads(script_path.read_text()) if script_path.exists() else None
    args.out.mkdir(parents=True, exist_ok=True)
    launch_args = launch_args_for(script, args.out)
    if args.web:
        launch_args += ['start_web_view:=true', f'web_view_port:={args.web_port}']
        url = f'http://127.0.0.1:{args.web_port}/'
        log(
            f'browser view: open {url} (it connects once the graph is up and shows the replay '
            f'live; type to the agent there). Its log: {args.out / "logs" / "web_view.log"}'
        )
        open_browser(url)
    run = run_graph_on_bag(bag, args.out, launch_args=launch_args, rate=args.rate, log=log)
    log(
        f'graph stopped; recorded {sum(run.recorded_counts.values())} messages. '
        'Writing the report ...'
    )
    run_info = json.loads((args.out / 'run.json').read_text())
    summary = write_report(args.out, run.output_bag, run_info, script)
    died = {name: s for name, s in run.launch_status.items() if s.get('starts', 1) > 1}
    cer = summary.get('stt_cer')
    heard = f', heard vs said CER {cer:.3f}' if cer is not None else ''
    log(
        f'{summary["turns"]} turns, '
        f'age as scripted {summary["age_correct"]}/{summary["age_scripted"]}{heard}, '
        f'e2e p50 {summary.get("e2e_ms_p50", float("nan")):.0f} ms / '
        f'p95 {summary.get("e2e_ms_p95", float("nan")):.0f} ms'
        + (f'; restarted nodes: {sorted(died)}' if died else '')
    )
    log(
        f'report: {args.out / "report.html"} (and report.md, avatar.mp4) — '
        f'{time.monotonic() - started:.0f} s in all'
    )
    return 0 if summary['turns'] else 1


def open_browser(url: str) -> None:
    """Open `url` in the desktop's browser when there is a desktop (no-op on a server)."""
    import os
    import webbrowser

    if os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'):
        try:
            webbrowser.open_new_tab(url)
        except webbrowser.Error:
            pass


if __name__ == '__main__':
    sys.exit(main())
