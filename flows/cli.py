"""`python -m flows` (or `pulse`): the command line. It parses, calls the stages, and formats.

Commands run the stages directly (no Prefect server needed); the Prefect flows of
`flows.orchestration` run the same functions when deployed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from flows.config import DEFAULT_PATH, Config, load_config
from flows.settings import NLP_BACKENDS, NLP_DEVICES, ConfigError, parse_warehouse_url

COMMANDS = (
    "demo",
    "collect",
    "analyze",
    "run",
    "classify",
    "dashboard",
    "serve",
    "download-models",
    "looker-url",
    "digest",
    "refresh",
    "stream",
)


def _program() -> str:
    """How the user started us: the console script or the module."""
    return "pulse" if Path(sys.argv[0]).name == "pulse" else "python -m flows"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program(),
        description="Follow what a community says under a hashtag: collect → lake → NLP → warehouse.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="INI configuration (default: ./configuration.conf if present, else the embedded "
        "default; demo: the embedded default)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "demo",
        parents=[common],
        help="the whole path on sample posts, locally (embedded default unless --config)",
    )
    sub.add_parser("collect", parents=[common], help="sources → lake (flow web-to-gcs)")
    sub.add_parser("analyze", parents=[common], help="lake → NLP → warehouse (flow gcs-to-bq)")
    sub.add_parser("run", parents=[common], help="collect, then analyze")
    sub.add_parser(
        "refresh",
        parents=[common],
        help="read the counters of recent posts again, and note the deleted ones (flow refresh)",
    )
    classify = sub.add_parser(
        "classify", parents=[common], help="classify a file of texts, no lake or warehouse needed"
    )
    classify.add_argument(
        "input", type=Path, help=".txt (a text per line), .jsonl, .csv or .parquet"
    )
    classify.add_argument("output", type=Path, help=".csv, .jsonl or .parquet")
    classify.add_argument("--backend", choices=NLP_BACKENDS, help="default: [pipeline] nlp_backend")
    classify.add_argument("--device", choices=NLP_DEVICES, help="default: [pipeline] nlp_device")
    download = sub.add_parser(
        "download-models",
        parents=[common],
        help="fetch the tweetnlp backend's models for offline use (Hugging Face cache or --dir)",
    )
    download.add_argument(
        "--dir", type=Path, default=None, help="a folder to write them to instead of the cache"
    )
    dashboard = sub.add_parser(
        "dashboard", parents=[common], help="the local dashboard over the views"
    )
    dashboard.add_argument("--port", type=int, default=8501, help="default: 8501")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)"
    )
    dashboard.add_argument(
        "--warehouse", default=None, help="a warehouse URL instead of the configured one"
    )
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the deployments of prefect.yaml, with their schedules, without a work pool",
    )
    serve.add_argument(
        "--prefect-file", type=Path, default=Path("prefect.yaml"), help="default: prefect.yaml"
    )
    looker = sub.add_parser(
        "looker-url",
        parents=[common],
        help="print the Looker Studio URL that opens a report over the BigQuery views",
    )
    looker.add_argument(
        "--report-name", default="Hashtag pulse", help="the report's name (default: %(default)s)"
    )
    looker.add_argument(
        "--template",
        default=None,
        help="the id of a template report to copy (see docs/looker-studio.md)",
    )
    stream = sub.add_parser(
        "stream",
        parents=[common],
        help="live: the [stream] sources → lake, analyze every minute (Ctrl+C flushes and stops)",
    )
    stream.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS",
        help="stop after this long, with everything flushed (default: until Ctrl+C)",
    )
    digest = sub.add_parser(
        "digest", parents=[common], help="the last days of the hashtag in one page"
    )
    digest.add_argument("--days", type=int, default=7, help="default: 7")
    digest.add_argument(
        "--out", type=Path, default=None, help="FILE.md or FILE.html (default: Markdown printed)"
    )
    digest.add_argument("--send", action="store_true", help="also send it through [alerts]")
    return parser


def _run(config: Config, collect_only: bool = False, analyze_only: bool = False) -> int:
    from flows.orchestration.blocks import gcp_auth
    from flows.orchestration.notify import alert_sender
    from flows.stages.analyze import analyze
    from flows.stages.collect import collect
    from flows.stages.reports import analyze_markdown, collect_markdown
    from flows.stages.stores import open_lake

    auth = gcp_auth(config)
    failed = False
    if not analyze_only:
        reports = collect(config, progress=True, auth=auth)
        print(collect_markdown(config.hashtag, config.lake, reports), end="\n\n")
        failed = any(r.error for r in reports)
    if not collect_only:
        from tqdm.auto import tqdm

        with tqdm(desc="analyze", unit=" posts") as bar:
            report = analyze(
                config,
                on_progress=lambda done, total: _advance(bar, done, total),
                auth=auth,
                send=alert_sender(config),
            )
        print(analyze_markdown(report), end="\n\n")
        print(f"Lake: {open_lake(config, auth).count_posts():,} posts in {config.lake}")
    return 1 if failed else 0


def _advance(bar, done: int, total: int) -> None:
    bar.total = total
    bar.update(done - bar.n)


def _dashboard_command(config: Config, args: argparse.Namespace) -> str:
    """The command that opens the dashboard on the warehouse this run filled."""
    command = f"{_program()} dashboard"
    if args.config is not None:
        return f"{command} --config {args.config}"
    if DEFAULT_PATH.exists() and load_config(None).warehouse != config.warehouse:
        return f"{command} --warehouse {config.warehouse}"
    return command


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command in ("demo", "run"):
        code = _run(config)
        print(f"Open the dashboard: {_dashboard_command(config, args)}")
        return code
    if args.command == "collect":
        return _run(config, collect_only=True)
    if args.command == "analyze":
        return _run(config, analyze_only=True)
    if args.command == "refresh":
        from flows.orchestration.blocks import gcp_auth
        from flows.stages.refresh import refresh, refresh_markdown

        reports = refresh(config, auth=gcp_auth(config))
        print(refresh_markdown(reports), end="\n\n")
        print(f"Run `{_program()} analyze` to show the new counts on the dashboard.")
        return 1 if any(r.run.status == "failed" for r in reports) else 0
    if args.command == "classify":
        from flows.nlp.classify import classify_file
        from flows.nlp.registry import load_backend

        backend = load_backend(
            args.backend or config.pipeline.nlp_backend,
            args.device or config.pipeline.nlp_device,
            config.pipeline.nlp_batch_size,
            config.tweetnlp,
        )
        rows = classify_file(args.input, args.output, backend)
        print(f"{rows:,} rows classified with {backend.model_id} → {args.output}")
        return 0
    if args.command == "download-models":
        from flows.nlp.tweetnlp.models import download_models

        keys = {
            "sentiment": "sentiment_model",
            "topic_classification": "topic_model",
            "ner": "ner_model",
        }
        for task, folder in download_models(config.tweetnlp, args.dir).items():
            key = keys[task]
            folder = folder.absolute()  # a relative one would depend on where the run starts
            print(f"{task}: {folder}" + (f"  ([tweetnlp] {key} = {folder})" if args.dir else ""))
        return 0
    if args.command == "dashboard":
        from dashboard import run_dashboard

        warehouse = args.warehouse or config.warehouse
        parse_warehouse_url(warehouse, f"--warehouse {warehouse}")  # before a server starts
        print(f"Dashboard on http://{args.host}:{args.port} over {warehouse} (Ctrl+C stops it)")
        return run_dashboard(warehouse, port=args.port, host=args.host)
    if args.command == "serve":
        from flows.orchestration.serve import serve

        # a deployment's `config_path: null` means ./configuration.conf: honour --config instead
        serve(args.prefect_file, config_path=str(args.config) if args.config else None)
        return 0
    if args.command == "looker-url":
        from flows.warehouse.looker import looker_url

        print(looker_url(config.warehouse, args.report_name, args.template))
        return 0
    if args.command == "digest":
        return _digest(config, args)
    if args.command == "stream":
        return _stream(config, args)
    raise AssertionError(args.command)


def _stream(config: Config, args: argparse.Namespace) -> int:
    from flows.orchestration.blocks import gcp_auth
    from flows.orchestration.notify import alert_sender
    from flows.stages.stream import run_stream, stream_markdown

    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration {args.duration}: give a number of seconds above 0")
    if config.stream.sources:  # else run_stream says what to configure
        sources = ", ".join(config.stream.sources)
        until = f"for {args.duration:g} s" if args.duration is not None else "until Ctrl+C"
        print(f"Streaming #{config.hashtag} from {sources} into {config.lake} {until}", flush=True)
    report = run_stream(
        config, duration=args.duration, auth=gcp_auth(config), send=alert_sender(config),
        handle_signals=True, progress=True,
    )
    print(stream_markdown(report), end="\n\n")
    if report.stopped_by is not None:  # the shell's convention: 128 + the signal (Ctrl+C: 130)
        return 128 + report.stopped_by
    return 1 if any(source.error for source in report.sources.values()) else 0


def _digest(config: Config, args: argparse.Namespace) -> int:
    from flows.orchestration.blocks import gcp_auth
    from flows.orchestration.notify import alert_sender
    from flows.stages.digest import build_digest, send_digest, to_html, to_markdown
    from flows.stages.stores import open_config_warehouse

    kind = args.out.suffix.lower() if args.out else ".md"
    if kind not in (".md", ".html"):
        raise ValueError(f"--out {args.out}: name a .md or .html file")
    if args.days < 1:
        raise ValueError(f"--days {args.days}: a digest covers 1 day or more")
    send = alert_sender(config) if args.send else None
    if args.send and send is None:
        raise ValueError("--send: [alerts] names no urls_env or block to send through")
    with open_config_warehouse(config, gcp_auth(config)) as warehouse:
        digest = build_digest(warehouse, config.hashtag, args.days)
    page = to_html(digest) if kind == ".html" else to_markdown(digest)
    if args.out:
        args.out.write_text(page, encoding="utf-8")
        print(f"digest of #{config.hashtag}, {args.days} days → {args.out}")
    else:
        print(page, end="")
    if send is not None:
        send_digest(digest, send)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        # the demo runs on the embedded default, whatever ./configuration.conf says
        config = load_config(args.config, embedded=args.command == "demo")
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from flows.lake.lock import LakeBusy
    from flows.nlp.backend import BackendUnavailable
    from flows.warehouse.errors import WarehouseError

    try:
        return _dispatch(args, config)
    except (BackendUnavailable, WarehouseError, LakeBusy, ValueError, OSError) as exc:
        if args.verbose:
            raise
        # problems the user can fix (a file or folder included): say which, without a traceback
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # what landed stays landed: each batch is written before its cursor moves
        print(f"{args.command}: interrupted; run it again to go on", file=sys.stderr)
        return 130
