"""osprof-trace: the operators' command line over the trace store."""

import argparse
import datetime
import math
import os
import sys

from cliff import app
from cliff import columns
from cliff import command
from cliff import commandmanager
from cliff import lister
from cliff import show as show_one
from oslo_config import cfg
import pbr.version

from osprof_collector import analysis
from osprof_collector import events
from osprof_collector import opts
from osprof_collector import query
from osprof_collector import render
from osprof_collector import storage
from osprof_collector import timeparse
from osprof_collector.render import analysis as analysis_render
from osprof_collector.render import words
from osprof_collector.storage import base

PROJECT = "osprof-collector"
CONNECTION_ENV = "OSPROF_TRACE_CONNECTION"
# Three heartbeats missed at the default [collector] heartbeat_interval.
STALE_AFTER = 3 * opts.HEARTBEAT_INTERVAL
# The most rows a listing asks a store for (MongoDB's limit is 32-bit).
MAX_LIMIT = 2**31 - 1
# The formats that keep lists and objects as they are; the others (table,
# value, csv, shell) show them as text.
STRUCTURED_FORMATS = ("json", "yaml")


class OperatorError(Exception):
    """A mistake or a condition the operator can act on: one line, exit 1."""


class ListColumn(columns.FormattableColumn):
    """A list: "a, b" as text, a list in json and yaml."""

    def human_readable(self):
        return ", ".join(str(v) for v in self._value)

    def machine_readable(self):
        return list(self._value)


class DictColumn(columns.FormattableColumn):
    """A mapping: "k=v, k=v" (sorted) as text, an object in json and yaml."""

    def human_readable(self):
        return ", ".join(f"{k}={v}" for k, v in sorted(self._value.items()))

    def machine_readable(self):
        return dict(self._value)


def _as_text(cell):
    """What a cell shows in a text format: cliff's value and csv formatters
    print str(machine_readable()), a Python repr for a list or a dict."""
    if isinstance(cell, columns.FormattableColumn):
        return cell.human_readable()
    return cell


class _Formats:
    """cliff output as every command here gives it: lists and objects as
    text in table, value, csv and shell, as such in json and yaml; no rows
    give a table of headers only, [] in json and yaml, nothing in value and
    csv."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.set_defaults(print_empty=True)  # cliff prints a blank line
        return parser

    def produce_output(self, parsed_args, column_names, data):
        text = parsed_args.formatter not in STRUCTURED_FORMATS
        if isinstance(self, show_one.ShowOne):
            data = [_as_text(c) for c in data] if text else data
        else:
            data = [[_as_text(c) for c in row] if text else row
                    for row in data]
            if not data and parsed_args.formatter == "csv":
                return 0  # not even the header line
        return super().produce_output(parsed_args, column_names, data)


def _base_id(text):
    base_id = events.normalise_uuid(text)
    if base_id is None:
        raise OperatorError(f"invalid trace id {text!r}: expected a UUID "
                            f"such as 4c9a3d6e-2f4b-4a44-9c4e-0f3e3a1c2b7d")
    return base_id


def _trace_spans(app, base_id):
    """The spans of one trace (its id already checked by _base_id(), so
    that a malformed id is refused before the store is even opened)."""
    found = app.store.get_spans(base_id)
    if not found:
        raise OperatorError(f"trace {base_id} not found")
    return found


def _whole_number(minimum, maximum=None):
    """An argparse type: a whole number from minimum (to maximum)."""
    def whole_number(text):
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise ValueError(f"{text} is not a whole number of at least "
                             f"{minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{text} is more than {maximum}")
        return value
    return _argument(whole_number)


def _amount(unit, positive=False):
    """An argparse type: a number of unit, 0 or more (or more than 0)."""
    expected = "more than 0" if positive else "0 or more"

    def amount(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and not value):
            raise ValueError(f"{text!r} is not a number of {unit}: "
                             f"expected {expected}")
        return value
    return _argument(amount)


def _argument(parse):
    """An argparse type that turns ValueError into a one-line error."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def _one_line_errors(parser):
    def error(message):
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        sys.exit(2)
    parser.error = error
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _one_line_errors(sub)
    return parser


class Show(command.Command):
    """Show one trace as a tree, a report or an export.

    Formats: a text tree, the osprofiler JSON report, an HTML page, a
    Graphviz graph, or Jaeger, Zipkin or OTLP JSON.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("base_id", metavar="BASE_ID")
        parser.add_argument("-f", "--format",
                            choices=[*render.FORMATS, *render.EXPORTS],
                            default="tree", dest="output_format",
                            help="output format (default: tree)")
        parser.add_argument("--out", metavar="FILE",
                            help="write to FILE instead of standard output")
        parser.add_argument("--max-depth", type=_whole_number(0),
                            metavar="N",
                            help="tree: hide spans nested deeper than N "
                                 "(top level is 0)")
        parser.add_argument("--min-duration", type=_amount("milliseconds"),
                            metavar="MS",
                            help="tree: hide spans shorter than MS "
                                 "milliseconds, with their children")
        parser.add_argument("--adjust-skew", action="store_true",
                            help="shift each host's spans by its estimated "
                                 "clock offset (see analyze)")
        return _one_line_errors(parser)

    def take_action(self, args):
        base_id = _base_id(args.base_id)
        found = _trace_spans(self.app, base_id)
        if args.adjust_skew:
            found, offsets = analysis.adjust_skew(base_id, found)
        if args.output_format in render.EXPORTS:
            text = render.EXPORTS[args.output_format](base_id, found)
        else:
            report = query.build_report(base_id, found)
            text = render.FORMATS[args.output_format](
                report, max_depth=args.max_depth,
                min_duration=args.min_duration)
        if args.adjust_skew and args.output_format == "tree":
            text += analysis_render.offsets_note(offsets)
        if args.out:
            try:
                with open(args.out, "w", encoding="utf-8") as out:
                    out.write(text)
            except OSError as exc:
                raise OperatorError(f"cannot write {args.out}: "
                                    f"{exc.strerror}") from None
        else:
            self.app.stdout.write(text)


class List(_Formats, lister.Lister):
    """List traces, newest first.

    incomplete: the trace has a span whose start or stop has not arrived.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--service", help="with a span of this service")
        parser.add_argument("--project", help="with a span of this project")
        parser.add_argument("--name", help="whose root span has this name")
        parser.add_argument("--since", type=_argument(timeparse.parse_moment),
                            help="started at or after: ISO time or age "
                                 "(15m, 2h, 7d)")
        parser.add_argument("--until", type=_argument(timeparse.parse_moment),
                            help="started before: ISO time or age")
        parser.add_argument("--errors", action="store_true",
                            help="only traces with an error")
        parser.add_argument("--min-duration", type=_amount("milliseconds"),
                            metavar="MS",
                            help="only traces lasting at least MS "
                                 "milliseconds")
        parser.add_argument("--limit", type=_whole_number(1, MAX_LIMIT),
                            default=20, metavar="N",
                            help="at most N traces (default: 20)")
        return _one_line_errors(parser)

    def take_action(self, args):
        trace_filter = base.TraceFilter(
            service=args.service, project=args.project, name=args.name,
            since=args.since, until=args.until, errors_only=args.errors,
            min_duration_ms=args.min_duration)
        found = self.app.store.list_traces(trace_filter, limit=args.limit)
        headers = ("base_id", "started_at", "duration_ms", "spans",
                   "services", "projects", "name", "error", "incomplete")
        return headers, [
            (t.base_id, _iso(t.started_at),
             None if t.duration_ms is None else round(t.duration_ms, 3),
             t.span_count, ListColumn(t.services), ListColumn(t.projects),
             t.root_name, t.error, t.incomplete) for t in found]


class Latency(_Formats, lister.Lister):
    """Give duration percentiles of one service's spans, per span name."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--service", required=True,
                            help="spans of this service")
        parser.add_argument("--name", help="only spans of this name")
        parser.add_argument("--project", help="only spans of this project")
        parser.add_argument("--since", type=_argument(timeparse.parse_moment),
                            default="1d",
                            help="spans started at or after: ISO time or "
                                 "age (15m, 2h, 7d; default: 1d)")
        parser.add_argument("--until", type=_argument(timeparse.parse_moment),
                            help="spans started before: ISO time or age")
        return _one_line_errors(parser)

    def take_action(self, args):
        found = self.app.store.span_latency(
            args.service, name=args.name, project=args.project,
            since=args.since, until=args.until)
        headers = ("name", "count", "mean_ms", "p50_ms", "p95_ms", "p99_ms",
                   "max_ms")
        return headers, [
            (row.name, row.count, *(round(ms, 3) for ms in (
                row.mean_ms, row.p50_ms, row.p95_ms, row.p99_ms,
                row.max_ms)))
            for row in found]


class Purge(command.Command):
    """Remove the traces whose last event is older than an age.

    Asks for confirmation on a terminal; elsewhere --yes is needed (exit
    status 2 without it). --dry-run only counts.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--older-than", required=True, metavar="AGE",
                            type=_argument(timeparse.parse_age),
                            help="e.g. 12h, 7d, 4w")
        parser.add_argument("--dry-run", action="store_true",
                            help="say how many traces would be removed, "
                                 "remove nothing")
        parser.add_argument("--yes", action="store_true",
                            help="remove without asking for confirmation")
        self.parser = _one_line_errors(parser)
        return self.parser

    def take_action(self, args):
        if not (args.dry_run or args.yes or sys.stdin.isatty()):
            # before the store is even opened: nothing to ask it yet
            self.parser.error("no terminal to confirm on: add --yes to "
                              "remove, or --dry-run to count")
        cutoff = datetime.datetime.utcnow() - args.older_than
        old = f"whose last event was before {_iso(cutoff)}"
        if args.dry_run or not args.yes:
            count = self.app.store.count_older_than(cutoff)
            if args.dry_run:
                self.app.stdout.write(
                    f"would remove {words.counted(count, 'trace')} {old} "
                    f"(dry run: nothing removed)\n")
                return
            if not count:  # nothing to ask about
                self.app.stdout.write(f"removed 0 traces {old}\n")
                return
            if not self._confirmed(
                    f"remove {words.counted(count, 'trace')} {old}? [y/N] "):
                raise OperatorError("nothing removed")
        removed = self.app.store.purge(cutoff)
        self.app.stdout.write(
            f"removed {words.counted(removed, 'trace')} {old}\n")

    @staticmethod
    def _confirmed(question):
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer.endswith("\n"):
            sys.stderr.write("\n")  # end of input: the prompt's line ends
        return answer.strip().lower() in ("y", "yes")


class Stats(_Formats, show_one.ShowOne):
    """Give the totals of the store: traces, spans, errors, time range."""

    def get_parser(self, prog_name):
        return _one_line_errors(super().get_parser(prog_name))

    def take_action(self, args):
        totals = self.app.store.stats()
        fields = ("traces", "spans", "error_traces", "first_event",
                  "last_event", "spans_per_service")
        return fields, (totals["traces"], totals["spans"],
                        totals["error_traces"], _iso(totals["first_event"]),
                        _iso(totals["last_event"]),
                        DictColumn(totals["spans_per_service"]))


class Status(_Formats, lister.Lister):
    """Show the collector workers and their counters, from their heartbeats.

    Exit status 1 unless at least one worker's heartbeat is recent.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--stale-after", type=_amount("seconds", True),
                            default=STALE_AFTER, metavar="SECONDS",
                            help=f"a worker whose last heartbeat is older "
                                 f"is stale (default: {STALE_AFTER})")
        return _one_line_errors(parser)

    def run(self, args):
        super().run(args)  # the table first: it shows what is stale
        if self.newest_age > args.stale_after:
            raise OperatorError(
                f"every collector heartbeat is stale: the newest is "
                f"{self.newest_age:.0f} s old (--stale-after "
                f"{args.stale_after:g})")
        return 0

    def take_action(self, args):
        heartbeats = self.app.store.get_heartbeats()
        if not heartbeats:
            raise OperatorError(f"no collector heartbeat in "
                                f"{storage.mask_password(self.app.store.url)}")
        now = datetime.datetime.utcnow()
        ages = [(now - h.updated_at).total_seconds() for h in heartbeats]
        self.newest_age = min(ages)
        headers = ("worker", "host", "pid", "started_at", "heartbeat_age_s",
                   *base.COUNTERS, "last_write", "state")
        return headers, [
            (h.worker, h.host, h.pid, _iso(h.started_at), round(age, 1),
             *(h.counts.get(name) for name in base.COUNTERS),
             _iso(h.last_write), "ok" if age <= args.stale_after else "stale")
            for h, age in zip(heartbeats, ages)]


def _add_format(parser):
    parser.add_argument("-f", "--format", choices=("text", "json"),
                        default="text", dest="output_format",
                        help="output format (default: text)")


class Analyze(command.Command):
    """Say where the time of one trace goes.

    Critical path, self time, repeated SQL and N+1 queries, fan-out of
    remote calls, clock skew.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("base_id", metavar="BASE_ID")
        _add_format(parser)
        parser.add_argument("--n-plus-one", type=_whole_number(1),
                            default=analysis.N_PLUS_ONE, metavar="N",
                            help=f"flag a statement run at least N times "
                                 f"under one parent (default: "
                                 f"{analysis.N_PLUS_ONE})")
        parser.add_argument("--limit", type=_whole_number(1),
                            default=analysis_render.LIMIT, metavar="N",
                            help=f"text: at most N rows per section "
                                 f"(default: {analysis_render.LIMIT})")
        parser.add_argument("--adjust-skew", action="store_true",
                            help="apply each host's estimated clock offset "
                                 "before analysing")
        return _one_line_errors(parser)

    def take_action(self, args):
        base_id = _base_id(args.base_id)
        found = _trace_spans(self.app, base_id)
        offsets = None
        if args.adjust_skew:
            found, offsets = analysis.adjust_skew(base_id, found)
        result = analysis.analyze(base_id, found, n_plus_one=args.n_plus_one)
        if offsets is not None:
            result["applied_offsets_ms"] = offsets
        if args.output_format == "json":
            text = analysis_render.to_json(result)
        else:
            text = analysis_render.analysis_text(result, limit=args.limit)
            if offsets is not None:
                text += analysis_render.offsets_note(offsets)
        self.app.stdout.write(text)


class Compare(command.Command):
    """Compare two traces per service and span name: counts and times."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("base_a", metavar="BASE_A")
        parser.add_argument("base_b", metavar="BASE_B")
        _add_format(parser)
        return _one_line_errors(parser)

    def take_action(self, args):
        base_a, base_b = _base_id(args.base_a), _base_id(args.base_b)
        spans_a = _trace_spans(self.app, base_a)
        spans_b = _trace_spans(self.app, base_b)
        result = analysis.compare(base_a, spans_a, base_b, spans_b)
        if args.output_format == "json":
            self.app.stdout.write(analysis_render.to_json(result))
        else:
            self.app.stdout.write(analysis_render.comparison_text(result))


def _iso(moment):
    return None if moment is None else moment.isoformat()


class TraceApp(app.App):

    def __init__(self):
        manager = commandmanager.CommandManager("osprof_trace.commands")
        for name, cls in (("show", Show), ("list", List),
                          ("latency", Latency), ("purge", Purge),
                          ("stats", Stats), ("status", Status),
                          ("analyze", Analyze), ("compare", Compare)):
            manager.add_command(name, cls)
        super().__init__(
            description="Read the traces stored by osprof-collector.",
            version=pbr.version.VersionInfo(PROJECT).version_string(),
            command_manager=manager, deferred_help=True)
        self._store = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument(
            "--connection", default=os.environ.get(CONNECTION_ENV),
            help=f"store URL (default: ${CONNECTION_ENV}, else [storage] "
                 f"connection of --config-file)")
        parser.add_argument(
            "--config-file", help="the collector's configuration file; "
                                  "its [storage] connection is used")
        return _one_line_errors(parser)

    def interact(self):
        sys.stderr.write("osprof-trace: a command is required: show, list, "
                         "latency, analyze, compare, purge, stats or status "
                         "(see osprof-trace --help)\n")
        sys.exit(2)

    def connection_url(self):
        if self.options.connection:
            return self.options.connection
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        try:
            files = ([self.options.config_file] if self.options.config_file
                     else cfg.find_config_files(PROJECT))
            conf([], project=PROJECT, default_config_files=files)
        except (cfg.Error, OSError) as exc:
            raise OperatorError(f"cannot read configuration: {exc}") from None
        self.url_is_the_default = not files
        return conf.storage.connection

    @property
    def store(self):
        if self._store is None:
            url = self.connection_url()
            try:
                # never storage.get_driver(): a reader creates no store
                self._store = storage.open_existing(url)
            except base.NoStoreError as exc:
                raise OperatorError(str(exc)) from None
            except base.StorageError as exc:
                raise OperatorError(f"cannot use store: {exc}"
                                    f"{self._how_to_choose()}") from None
        return self._store

    def _how_to_choose(self):
        """With no store named anywhere, the default was tried: say so."""
        if not getattr(self, "url_is_the_default", False):
            return ""
        return (f" (the default store; choose one with --connection URL, "
                f"${CONNECTION_ENV} or --config-file FILE)")

    def clean_up(self, cmd, result, err):
        if self._store is not None:
            self._store.close()


def main(argv=None):
    return TraceApp().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
