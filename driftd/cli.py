"""Command line: run | replay | profile build | report | check-config | config-schema.

The only place where exit codes are decided: 0 ok, 2 bad config or usage (the message names
the key and the problem), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from driftd._version import __version__
from driftd.errors import ConfigError, DriftdError, SourceError, StateError
from driftd.runtime.console import CalibrationDisplay, fatal_json, setup_logging
from driftd.types import RawRecord

log = logging.getLogger("driftd")

__all__ = ["build_parser", "entry", "main", "setup_logging"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors → exit 2 with a clear line
        exc = ConfigError("usage", message)
        exc.usage = self.format_usage()  # type: ignore[attr-defined]  # main() shows it
        raise exc


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="driftd", description="Streaming drift detection for ML predictions.")
    p.add_argument("--version", action="version", version=f"driftd {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="consume Kafka, export metrics, call webhooks")
    run.add_argument("-c", "--config", required=True)
    run.add_argument("--bootstrap-servers", help="override kafka.bootstrap_servers (comma list)")
    run.add_argument("--group-id", help="override kafka.group_id")
    run.add_argument("--listen", help="override http.listen (HOST:PORT)")
    run.add_argument("--state-dir", help="override state.dir")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="consumer processes in the group; worker i serves HTTP on the listen port + i",
    )
    run.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)

    rp = sub.add_parser("replay", help="run the pipeline over JSONL files, print evaluations")
    rp.add_argument("-c", "--config", required=True)
    rp.add_argument("files", nargs="+", help="event files (JSONL, CSV, Parquet), or - for stdin")
    rp.add_argument(
        "--format",
        choices=["jsonl", "csv", "parquet"],
        help="event file format (default: by extension)",
    )
    rp.add_argument("--out", help="write JSONL here instead of stdout")
    rp.add_argument("--batch", type=int, default=5000, help="micro-batch size")
    rp.add_argument("--audit", help="also write the alert-decision audit log (JSONL) here")
    rp.add_argument(
        "--labels",
        action="append",
        metavar="FILE",
        help="label events (JSONL: event_id, label, ts) for performance monitors, each file in "
        "label-time order (repeatable; merged by ts); a label is fed once the replayed "
        "predictions' event time reaches its ts",
    )

    prof = sub.add_parser("profile", help="reference profiles")
    psub = prof.add_subparsers(dest="profile_command", required=True, parser_class=_Parser)
    pb = psub.add_parser("build", help="compile a reference profile from baseline data")
    pb.add_argument("-c", "--config", required=True)
    pb.add_argument("--monitor", required=True)
    pb.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="event file(s): JSONL, CSV or Parquet (by extension; - for JSONL on stdin)",
    )
    pb.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="input format")
    pb.add_argument("--out", required=True)
    pb.add_argument("--seed", type=int, default=0)

    rep = sub.add_parser(
        "report",
        help="write one self-contained HTML report",
        description="(a) a reference (--profile, --reference, or the monitor's profile from -c)"
        " against --current data, or (b) a replay output (--replay), optionally with the"
        " reference (--profile, or from -c) and the replay input (--events) for the"
        " distributions",
    )
    rep.add_argument("--out", required=True, help="the HTML file to write")
    rep.add_argument("-c", "--config", help="daemon config: the monitor's settings")
    rep.add_argument("--monitor", help="monitor name (default: the only or first one)")
    rep.add_argument("--profile", help="reference profile file")
    rep.add_argument("--reference", nargs="+", metavar="FILE", help="(a) reference event files")
    rep.add_argument("--current", nargs="+", metavar="FILE", help="(a) current event files")
    rep.add_argument("--replay", metavar="FILE", help="(b) `driftd replay` output (JSONL)")
    rep.add_argument("--events", nargs="+", metavar="FILE", help="(b) the replay input")
    rep.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="event file format")
    rep.add_argument("--title")

    cc = sub.add_parser("check-config", help="validate and print the effective config")
    cc.add_argument("-c", "--config", required=True)
    cc.add_argument(
        "--connect",
        action="store_true",
        help="also reach the brokers (topics and partition counts) and resolve webhook hosts",
    )

    sub.add_parser("config-schema", help="print the config's JSON Schema")
    return p


def _load(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Any:
    from driftd.config import load_config

    return load_config(args.config, overrides=overrides)


def cmd_check_config(args: argparse.Namespace) -> int:
    from driftd.config import masked_dump
    from driftd.errors import raise_all
    from driftd.runtime.checks import connect_problems, problems
    from driftd.runtime.pipeline import load_specs

    cfg = _load(args)
    raise_all(problems(cfg))  # every check `driftd run` makes before connecting
    notes: list[str] = []
    if args.connect:
        found, notes = connect_problems(cfg)
        raise_all(found)
    # thresholds as run resolves them (calibrated if needed, with progress)
    specs = load_specs(cfg, progress=CalibrationDisplay())
    data = masked_dump(cfg)
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    for s in specs:

        def fmt(f: Any) -> str:
            return (
                f"{f.name}={f.test.name}@{f.threshold:.4g}{' (calibrated)' if f.calibrated else ''}"
            )

        if s.mode != "profile":
            from driftd.monitor.refmodes import describe

            sys.stdout.write(f"# monitor {s.cfg.name}: {describe(s)}\n")
            continue
        feats = ", ".join(fmt(f) for f in s.features)
        if s.prediction is not None:
            feats += ", " + fmt(s.prediction)
        sys.stdout.write(
            f"# monitor {s.cfg.name}: profile {s.profile.id} ({s.profile.events} events); {feats}\n"
        )
        sys.stdout.writelines(f"# monitor {s.cfg.name}: {x}\n" for x in s.models())
        if s.cfg.segment_by:
            own = ", ".join(
                f"{p.events} rows for {','.join(k)}" for k, p in s.profile.segments.items()
            )
            sys.stdout.write(
                f"# monitor {s.cfg.name}: segments by {', '.join(s.cfg.segment_by)}"
                f" (max {s.cfg.max_segments}); own references: {own or 'none'}"
                " (other segments use the global reference)\n"
            )
    for note in notes:
        sys.stdout.write(f"# {note}\n")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    from driftd.config import json_schema

    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


# Progress is drawn only after this long, so small inputs never flash a line.
_PROGRESS_DELAY_S = 0.5
_PROGRESS_INTERVAL_S = 0.2


class _Progress:
    """One self-overwriting progress line on stderr (bytes read, events, events/s).

    Silent unless stderr is a terminal: logs, pipes and CI output never see it. The line is
    erased on ``close()`` so the command's own summary line stands alone.
    """

    def __init__(self, label: str, paths: Sequence[str], enabled: bool = True) -> None:
        self.stream = sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.label = label
        sizes = [Path(p).stat().st_size if p != "-" and Path(p).is_file() else -1 for p in paths]
        self.total = None if -1 in sizes else sum(sizes)  # stdin: size unknown
        self.read = 0
        self.events = 0
        self.started = time.monotonic()
        self.last = self.started + _PROGRESS_DELAY_S - _PROGRESS_INTERVAL_S
        self.shown = False

    def update(self, nbytes: int, events: int) -> None:
        self.read += nbytes
        self.events += events
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < _PROGRESS_INTERVAL_S:
            return
        self.last = now
        rate = self.events / max(now - self.started, 1e-9)
        done = f"{self.read / 2**20:,.1f}"
        if self.total:
            done = f"{100.0 * min(self.read, self.total) / self.total:5.1f}% {done}"
            done += f"/{self.total / 2**20:,.1f}"
        self.stream.write(
            f"\r{self.label}: {done} MiB, {self.events:,} events, {rate:,.0f} events/s\x1b[K"
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def cmd_profile_build(args: argparse.Namespace) -> int:
    from driftd.reference.profile import build_profile

    cfg = _load(args)
    mon = cfg.monitor(args.monitor)
    progress = _Progress("profile build", args.input)

    def lines() -> Any:
        from driftd.io import detect_format, event_lines

        for path in args.input:
            detect_format(path, args.format)
        for line in event_lines(args.input, args.format, cfg.schema_):
            progress.update(len(line) + 1, 1)
            yield line

    try:
        prof = build_profile(mon, cfg.schema_, lines(), seed=args.seed)
    finally:
        progress.close()
    if prof.events == 0:
        raise ConfigError("--input", "no usable events in the input")
    from driftd.monitor.spec import build_spec

    index = next(i for i, m in enumerate(cfg.monitors) if m.name == mon.name)
    # calibrates thresholds into prof.calibration: a bar on a terminal, else log lines
    spec = build_spec(mon, prof, index, progress=CalibrationDisplay())
    pid = prof.save(Path(args.out))
    sys.stderr.write(
        f"profile {pid} for monitor {mon.name}: {prof.events} events"
        f" ({prof.rejected} rejected), {len(prof.features)} features -> {args.out}\n"
    )
    for f in [*spec.features, *([spec.prediction] if spec.prediction else [])]:
        how = (
            "calibrated" if f.calibrated else "configured" if _explicit(mon, f.name) else "default"
        )
        sys.stderr.write(f"  {f.name}: {f.test.name} threshold {f.threshold:.4g} ({how})\n")
    sys.stderr.writelines(f"  {x}\n" for x in spec.models())
    if mon.segment_by:
        sys.stderr.write(
            f"  segments by {', '.join(mon.segment_by)}: {len(prof.segments)} with their own"
            f" reference (>= {mon.segment_min_reference_events} rows)\n"
        )
        for key, seg_spec in spec.segment_specs.items():
            tests = ", ".join(
                f"{f.name}={f.test.name}@{f.threshold:.4g}"
                for f in [
                    *seg_spec.features,
                    *([seg_spec.prediction] if seg_spec.prediction else []),
                ]
            )
            sys.stderr.write(f"    {','.join(key)}: {prof.segments[key].events} rows; {tests}\n")
    return 0


def _explicit(mon: Any, name: str) -> bool:
    fc = mon.prediction if name == "prediction" else mon.features.get(name)
    return fc is not None and fc.threshold is not None


def cmd_replay(args: argparse.Namespace) -> int:
    from driftd.runtime.replay import replay_lines

    cfg = _load(args)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    # Evaluations scrolling on the same terminal would tear the progress line apart.
    progress = _Progress("replay", args.files, enabled=bool(args.out) or not sys.stdout.isatty())

    def seen(batch: Sequence[RawRecord]) -> None:
        nbytes = getattr(batch, "nbytes", None)  # a RecordBatch: no object per line
        if nbytes is not None:
            progress.update(nbytes + len(batch), len(batch))
        else:
            progress.update(sum(len(r.value or b"") + 1 for r in batch), len(batch))

    opts = orjson.OPT_SERIALIZE_NUMPY
    lines = replay_lines(
        cfg,
        args.files,
        labels=args.labels or [],
        audit=Path(args.audit) if args.audit else None,
        batch=args.batch,
        progress=seen,
        fmt=args.format,
    )
    try:
        for line in lines:
            out.write(orjson.dumps(line, option=opts) + b"\n")
        out.flush()
    finally:
        progress.close()
        if args.out:
            out.close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from driftd.report import report

    if args.replay and (args.current or args.reference):
        raise ConfigError("usage", "give --replay, or --current (with a reference), not both")
    if args.replay:
        out = report(
            args.out,
            replay=args.replay,
            profile=args.profile,
            events=args.events,
            config=args.config,
            monitor=args.monitor,
            format=args.format,
            title=args.title,
        )
    else:
        if not args.current:
            raise ConfigError("usage", "give --current data (with a reference), or --replay")
        if args.events:
            raise ConfigError("--events", "goes with --replay")
        if args.profile and args.reference:
            raise ConfigError("usage", "give --profile or --reference, not both")
        reference: Any = args.reference
        if args.profile or not args.reference:
            from driftd.api import Profile

            path = args.profile
            if path is None:
                if args.config is None:
                    raise ConfigError("usage", "give --profile, --reference or -c CONFIG")
                path = _monitor_profile(args)
            reference = Profile.load(path)
        out = report(
            args.out,
            reference=reference,
            current=args.current,
            config=args.config,
            monitor=args.monitor,
            format=args.format,
            title=args.title,
        )
    sys.stderr.write(f"report -> {out}\n")
    return 0


def _monitor_profile(args: argparse.Namespace) -> Path:
    from driftd.config import ProfileReference

    cfg = _load(args)
    mon = cfg.monitor(args.monitor) if args.monitor else cfg.monitors[0]
    if not isinstance(mon.reference, ProfileReference):
        raise ConfigError("--profile", f"monitor {mon.name} has no profile reference; give one")
    return mon.reference.path


def cmd_run(args: argparse.Namespace) -> int:
    from driftd.runtime import workers
    from driftd.runtime.daemon import Daemon

    if args.workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    if args.workers > 1:
        cfg = _load(args, {"http.listen": args.listen, "state.dir": args.state_dir})
        return workers.supervise(args, cfg)
    kafka = {"kafka.bootstrap_servers": args.bootstrap_servers, "kafka.group_id": args.group_id}
    cfg = _load(args, {**kafka, "http.listen": args.listen, "state.dir": args.state_dir})
    if cfg.scale_out.enabled:
        from driftd.runtime.scaled import ScaledDaemon

        daemon: Daemon = ScaledDaemon(cfg, worker=args.worker)
    else:
        daemon = Daemon(cfg, worker=args.worker)
    daemon.install_signal_handlers()
    if args.worker is not None:  # one of `--workers N`: it ends with its supervisor
        workers.watch_supervisor(daemon.stop_event)
    return daemon.run()


COMMANDS = {
    "run": cmd_run,
    "replay": cmd_replay,
    "check-config": cmd_check_config,
    "report": cmd_report,
    "config-schema": cmd_config_schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that even a usage error is one JSON line for a log shipper.
    as_json = any(
        a == "--log-format=json" or (a == "--log-format" and argv[i + 1 : i + 2] == ["json"])
        for i, a in enumerate(argv)
    )
    try:
        args = build_parser().parse_args(argv)
    except ConfigError as exc:
        if not as_json:
            sys.stderr.write(getattr(exc, "usage", ""))
        return _fatal(as_json, 2, f"error: {exc.problem}", exc)
    setup_logging(args.log_level, args.log_format)
    as_json = args.log_format == "json"
    try:
        if args.command == "profile":
            return cmd_profile_build(args)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for e in getattr(exc, "errors", [exc]):
            _fatal(as_json, 2, f"config error: {e}", e)
        return 2
    except StateError as exc:
        return _fatal(as_json, 2, str(exc), exc)
    except SourceError as exc:
        log.error("source failed: %s", exc, exc_info=as_json)
        return 1
    except DriftdError as exc:
        log.error("%s", exc, exc_info=as_json)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not as_json:
            raise  # text: Python's traceback and exit 1, as ever
        return _fatal(True, 1, f"crashed: {exc!r}", exc)


def _fatal(as_json: bool, code: int, msg: str, exc: BaseException) -> int:
    """Report the error that ends the command, as one JSON line (with ``exc``) under
    ``--log-format json``, else as ``driftd: …``; return its exit code."""
    level = logging.CRITICAL if code == 1 else logging.ERROR
    sys.stderr.write((fatal_json(msg, exc, level) if as_json else f"driftd: {msg}") + "\n")
    sys.stderr.flush()
    return code


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
