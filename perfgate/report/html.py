"""The report as one self-contained HTML page: no script, no font, no request when it is
opened (its charts are SVG drawn by ``svg.py``), readable on a desktop and on a phone,
light or dark as the reader's system is.

The verdict and its reason come first, then every check with its interval drawn against
its budget, the warnings, the figures (``plots.py``), and what was compared, the settings
and the environment. Every text from the report goes through ``esc``.
"""

from __future__ import annotations

from perfgate.formatting import format_seconds
from perfgate.report import generation, parts
from perfgate.report.plots import Figure, drift_figures, generation_figures, latency_figures, load_figures, size_figures, starts_and_stages, throughput_and_memory
from perfgate.report.summary import (
    DATA_DRIFT,
    change,
    data_files,
    detectable,
    gated,
    interval,
    level,
    needs_note,
    noise_text,
    note,
    place,
    python_label,
    tally,
    value,
    verdict_word,
)
from perfgate.report.svg import esc, interval_strip
from perfgate.results import Check, ModelReport, Report, Verdict


def render_html(report: Report) -> str:
    title = _title(report)
    body = f"{_banner(report)}\n{_body(report)}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # nothing on this page may load anything: it is opened from artifacts and mail
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _body(report: Report) -> str:
    """Everything below the banner; a merged report's parts each get one."""
    if report.parts:
        return parts.html_body(report, _body, esc)
    sections = [
        _compared(report),
        _checks(report),
        _generation(report),
        _warnings(report),
        _figures("Time to first token and between tokens", generation_figures(report)),
        _figures("Latency", latency_figures(report)),
        _figures("Latency across blocks", drift_figures(report)),
        _figures("Throughput and memory", throughput_and_memory(report)),
        _figures("Cold start and stages", starts_and_stages(report)),
        _figures("Latency against input size", size_figures(report)),
        _figures("Latency under load", load_figures(report)),
        _about(report),
    ]
    return "\n".join(section for section in sections if section)


def _title(report: Report) -> str:
    verdict = verdict_word(report.verdict)
    if report.candidate is not None and report.reference is not None:
        return f"perfgate {verdict}: {report.candidate.path} vs {report.reference.path}"
    return f"perfgate {verdict}"


def _banner(report: Report) -> str:
    verdict = report.verdict
    if verdict is Verdict.ERROR:
        code = report.error.exit_code if report.error is not None else 3
        message = report.error.message if report.error is not None else report.reason
        detail = f"The comparison could not be carried out (exit {code}): {esc(message)}"
    else:
        counted = tally(report) if not report.parts else f"{len(report.parts)} parts merged"
        detail = f"<strong>{esc(counted)}.</strong> {esc(report.reason)}"
    when = f'<p class="meta">{esc(report.created)} · perfgate {esc(report.perfgate_version)}</p>' if report.created else ""
    return (f'<header class="banner {verdict.value}"><h1>{_ICONS[verdict]}'
            f'perfgate: {esc(verdict_word(verdict))}</h1><p>{detail}</p>{when}</header>')  # fmt: skip


# drawn, not emoji: a headless browser or a bare system may have no emoji font
_ICON = '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="11"/><path d="{}"/></svg>'
_ICONS = {
    Verdict.PASS: _ICON.format("M6.5 12.5l3.5 3.5 7.5-8"),
    Verdict.FAIL: _ICON.format("M7.5 7.5l9 9M16.5 7.5l-9 9"),
    Verdict.INCONCLUSIVE: _ICON.format("M12 6.5v7M12 16.8v.7"),
    Verdict.ERROR: _ICON.format("M12 6.5v7M12 16.8v.7"),
}


def _compared(report: Report) -> str:
    if report.reference is None or report.candidate is None:
        return ""
    cards = [_model_card(role, model) for role, model in (("reference", report.reference), ("candidate", report.candidate))]
    if report.data is not None:
        data = report.data
        drift = f"<p><strong>{esc(DATA_DRIFT.capitalize())}.</strong></p>" if data.compares == "data" else ""
        cards.extend(f'<div class="card"><h3>{esc(role)}</h3><p class="path">{esc(path)}</p>'
                     f"<p>{data.rows_used} of {total} rows, seed {data.seed}</p>{drift}</div>" for role, path, total in data_files(data))  # fmt: skip
    return f'<section class="cards">{"".join(cards)}</section>'


def _model_card(role: str, model: ModelReport) -> str:
    backend = model.backend
    threads = f"{backend.threads} thread{'s' if backend.threads != 1 else ''}"
    python = f'<p class="path">{esc(python_label(model))}</p>' if model.python else ""
    feeds = "".join(f"<li>{esc(item.input)} ← {esc(', '.join(item.columns))} ({esc(item.dtype)})</li>" for item in model.inputs)
    return (f'<div class="card {role}"><h3><span class="key {"ref" if role == "reference" else "cand"}"></span>{role}</h3>'
            f'<p class="path">{esc(model.path)}</p><p>{esc(backend.framework)} {esc(backend.framework_version)} on '
            f"{esc(backend.device)}, {threads}</p>{python}<ul>{feeds}</ul></div>")  # fmt: skip


def _checks(report: Report) -> str:
    if not report.checks:
        return ""
    notes: list[str] = []
    rows = "".join(_check_row(check, notes) for check in report.checks)
    # the reason a check has no interval, in sight (a title attribute shows only on hover, never on a phone)
    footnotes = "".join(f"<li>[{number}] {esc(text)}</li>" for number, text in enumerate(notes, 1))
    footnotes = f'<ul class="footnotes">{footnotes}</ul>' if footnotes else ""
    levels = sorted({level(check) for check in gated(report) if check.ci_level is not None})
    explained = (f"Intervals at {esc(', '.join(levels))}: " if levels else "") + (
        "the bar is the interval of the change, the notch in it the estimate, the dashed line the budget and the thin "
        "line no change. A check fails when its whole interval is past the budget and is inconclusive when it straddles it."
    )
    return (
        '<section><h2>Checks</h2><div class="scroll"><table class="checks"><thead><tr><th>metric</th><th>at</th>'
        '<th class="num">reference</th><th class="num">candidate</th><th class="num">change</th><th>interval</th>'
        f'<th class="num">budget</th><th class="num">detectable</th><th>verdict</th></tr></thead><tbody>{rows}</tbody></table></div>'
        f'{footnotes}<p class="note">{explained}</p></section>'
    )


def _check_row(check: Check, notes: list[str]) -> str:
    """A check's row; one without an interval gets a numbered note in ``notes`` saying why."""
    css = {Verdict.FAIL: "fail", Verdict.PASS: "pass", Verdict.INCONCLUSIVE: "inconclusive"}.get(check.verdict, "info")
    strip = ""
    if check.ci is not None:
        strip = interval_strip(check.ci[0], check.ci[1], check.ratio, check.limit, css, f"{interval(check)}, budget {check.budget or 'none'}")
    span = interval(check)
    if needs_note(check):
        notes.append(note(check))
        span = f"see [{len(notes)}]"
    return (
        f'<tr class="{css}" title="{esc(check.reason)}"><td class="metric">{esc(check.metric)}</td>'
        f'<td class="at">{esc(place(check))}</td><td class="num ref">{esc(value(check, check.reference))}</td>'
        f'<td class="num cand">{esc(value(check, check.candidate))}</td><td class="num change">{esc(change(check))}</td>'
        f'<td class="interval">{strip}<span>{esc(span) if span != "-" else ""}</span></td>'
        f'<td class="num budget">{esc(check.budget or "-")}</td><td class="num">{esc(detectable(check))}</td><td class="verdict"><span class="pill {css}">'
        f"{esc(verdict_word(check.verdict))}</span></td></tr>"
    )


def _generation(report: Report) -> str:
    """Generate mode: each model's requests in a small table, the greedy answers' agreement
    and, for a served model, whose clock timed it."""
    parts = []
    for series, sides in generation.facts(report):
        head = "".join(f'<th class="num">{esc(name)}</th>' if name not in ("counted by", "prompt tokens") else f"<th>{esc(name)}</th>"
                       for name in generation.HEADERS)  # fmt: skip
        rows = "".join(
            f'<tr><td><span class="key {"ref" if facts.side == "reference" else "cand"}"></span>{esc(facts.side)}</td>'
            + "".join(f'<td class="{"num" if index not in (2, 3) else ""}">{esc(cell)}</td>' for index, cell in enumerate(facts.cells))
            + "</tr>"
            for facts in sides
        )
        parts.append(f'<p>{esc(generation.heading(series))}</p><div class="scroll"><table><thead><tr><th></th>{head}</tr></thead>'
                     f"<tbody>{rows}</tbody></table></div>")  # fmt: skip
    if report.answers is not None:
        agreement = generation.answers_text(report.answers)
        parts.append(f'<p class="note">{esc(agreement[:1].upper() + agreement[1:])}.</p>')
    note = generation.endpoint_note(report)
    if note:
        parts.append(f'<p class="note"><strong>Note:</strong> {esc(note)}.</p>')
    return f'<section><h2>Generation</h2>{"".join(parts)}</section>' if parts else ""


def _warnings(report: Report) -> str:
    if not report.warnings:
        return ""
    items = "".join(f"<li>{esc(warning)}</li>" for warning in report.warnings)
    return f'<section class="warnings"><h2>Warnings</h2><ul>{items}</ul></section>'


def _figures(heading: str, figures: list[Figure]) -> str:
    if not figures:
        return ""
    cells = "".join(f'<figure><figcaption><strong>{esc(f.title)}</strong> {esc(f.caption)}</figcaption>{_legend(f)}{f.svg}</figure>'
                    for f in figures)  # fmt: skip
    return f'<section><h2>{esc(heading)}</h2><div class="grid">{cells}</div></section>'


def _legend(figure: Figure) -> str:
    keys = "".join(f'<span><i class="key {esc(css)}"></i>{esc(label)}</span>' for label, css in figure.legend)
    return f'<div class="legend">{keys}</div>'


def _about(report: Report) -> str:
    parts = []
    if report.run is not None:
        run = report.run
        stop = "when every check was decided" if run.stopped_because == "decided" else "when the time budget was spent"
        pairs = ", ".join([f"batch {s.batch_size}: {s.pairs} block pairs of {s.calls_per_block} calls" for s in report.series]
                          + ([generation.run_text(report)] if report.generations else []))
        parts.append(f"<p>Measured {esc(pairs)} per model, interleaved, for {format_seconds(run.measure_seconds)} in {run.looks} "
                     f"look{'s' if run.looks != 1 else ''}; it stopped {stop}. {format_seconds(run.total_seconds)} in all.</p>")  # fmt: skip
        if report.noise:
            parts.append("<p>Noise: " + esc("; ".join(noise_text(noise) for noise in report.noise)) + ".</p>")
    if report.settings is not None:
        s = report.settings
        generate = [("task", s.task), ("max new tokens", str(s.max_new_tokens)), ("prompt column", s.prompt_column or "-"),
                    ("chat template", "yes" if s.chat else "no")] if s.task == "generate" else []  # fmt: skip
        items = [("budgets", ", ".join(s.budgets) or "none"), *generate, ("batch sizes", ", ".join(map(str, s.batch_sizes)) or "-"),
                 ("time budget", f"{s.time_budget_s:g} s"), ("confidence", f"{s.confidence:g}"), ("seed", str(s.seed)),
                 ("threads", str(s.threads)), ("device", s.device),
                 ("inputs", "; ".join(f"{k} = {v}" for k, v in s.inputs.items()) or "by name")]  # fmt: skip
        if s.loads:
            items.append(("under load", ", ".join(s.loads)))
        if s.size_column:
            items.append(("size column", s.size_column))
        parts.append(_definitions("Settings", items))
    if report.environment is not None:
        env = report.environment
        items = [("machine", f"{env.os} {env.kernel} {env.machine}"),
                 ("CPU", f"{env.cpu}, {env.usable_cpus} of {env.logical_cpus} logical CPUs usable"),
                 ("memory", f"{env.memory_gib:.1f} GiB" if env.memory_gib else "-"), ("Python", env.python),
                 ("CI", env.ci or "-")] + list({**env.packages, **env.frameworks}.items())  # fmt: skip
        parts.append(_definitions("Environment", items))
    if not parts:
        return ""
    return f'<section class="about"><h2>How it was measured</h2>{"".join(parts)}</section>'


def _definitions(heading: str, items: list[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in items)
    return f"<details><summary>{esc(heading)}</summary><dl>{rows}</dl></details>"


_STYLE = """
:root{--bg:#f6f8fa;--panel:#fff;--text:#1f2328;--muted:#59636e;--line:#d1d9e0;--grid:#eaeef2;
--ref:#3b6fb6;--cand:#e0700b;--pass:#1a7f37;--fail:#cf222e;--inconclusive:#9a6700;--error:#8250df;--info:#59636e;
--seg0:#8da0cb;--seg1:#66c2a5;--seg2:#fc8d62;--seg3:#e78ac3;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--panel:#151b23;--text:#e6edf3;--muted:#9198a1;--line:#3d444d;
--grid:#262c36;--ref:#6ea8fe;--cand:#ff9b3d;--pass:#3fb950;--fail:#f85149;--inconclusive:#d29922;--error:#ab7df8;--info:#9198a1}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",
Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 16px 40px}
h1{font-size:26px;margin:0 0 6px}h2{font-size:19px;margin:28px 0 10px}h3{font-size:13px;margin:0 0 4px;
text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.banner{background:var(--panel);border:1px solid var(--line);border-left:6px solid var(--muted);border-radius:8px;
padding:16px 20px}.banner p{margin:4px 0;overflow-wrap:anywhere}.banner .meta{color:var(--muted);font-size:13px}
.banner.pass{border-left-color:var(--pass)}.banner.fail{border-left-color:var(--fail)}
.banner.inconclusive{border-left-color:var(--inconclusive)}.banner.error{border-left-color:var(--error)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,300px),1fr));gap:12px;margin-top:14px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card p{margin:2px 0}.card ul{margin:4px 0 0;padding-left:18px;color:var(--muted);font-size:13px}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}
.key{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}.key.ref{background:var(--ref)}
.key.cand{background:var(--cand)}.key.seg0{background:var(--seg0)}.key.seg1{background:var(--seg1)}
.key.seg2{background:var(--seg2)}.key.seg3{background:var(--seg3)}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:13px;margin:0 0 4px}
.icon{width:26px;height:26px;vertical-align:-4px;margin-right:8px}.icon circle{fill:var(--muted)}
.icon path{fill:none;stroke:#fff;stroke-width:2.6;stroke-linecap:round;stroke-linejoin:round}
.pass .icon circle{fill:var(--pass)}.fail .icon circle{fill:var(--fail)}
.inconclusive .icon circle{fill:var(--inconclusive)}.error .icon circle{fill:var(--error)}
.scroll{overflow-x:auto;background:var(--panel);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:7px 10px;text-align:left;border-bottom:1px solid var(--grid);white-space:nowrap}
td.metric,td.at{white-space:normal;overflow-wrap:anywhere;min-width:7em}
th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
tbody tr:last-child td{border-bottom:0}.num{text-align:right;font-variant-numeric:tabular-nums}
td.change{font-weight:600}tr.info td{color:var(--muted)}
td.interval{font-size:12px;color:var(--muted)}td.interval svg{display:block}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--info)}
.pill.pass{background:var(--pass)}.pill.fail{background:var(--fail)}.pill.inconclusive{background:var(--inconclusive)}
.pill.info{background:transparent;color:var(--muted);border:1px solid var(--line)}
.note{color:var(--muted);font-size:13px}
.footnotes{list-style:none;padding:0;margin:8px 0 0;font-size:13px}.footnotes li{overflow-wrap:anywhere}
.warnings ul{background:var(--panel);border:1px solid var(--inconclusive);border-radius:8px;padding:10px 12px 10px 30px;
margin:0}.warnings li{overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:14px}
figure{margin:0;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px}
figcaption{font-size:13px;color:var(--muted);margin-bottom:6px}figcaption strong{color:var(--text);display:block;font-size:14px}
svg.chart{width:100%;height:auto;display:block;font-size:12px}
svg text{fill:var(--muted)}svg .label,svg .legend{fill:var(--text)}svg .value{font-size:11px}
svg .grid{stroke:var(--grid)}svg .axis{stroke:var(--line)}svg .zero{stroke:var(--muted);stroke-width:1}
svg .budget{stroke:var(--text);stroke-dasharray:3 2;stroke-width:1.5}
svg .stroke{fill:none;stroke-width:2}svg .dashed{stroke-dasharray:5 4;stroke-width:1.5}
svg .ref.stroke{stroke:var(--ref)}svg .cand.stroke{stroke:var(--cand)}
svg .ref.area,svg .ref.band{fill:var(--ref);opacity:.16}svg .cand.area,svg .cand.band{fill:var(--cand);opacity:.16}
svg .ref.dot,svg .ref.bar,svg .ref.swatch{fill:var(--ref)}svg .cand.dot,svg .cand.bar,svg .cand.swatch{fill:var(--cand)}
svg .seg0{fill:var(--seg0)}svg .seg1{fill:var(--seg1)}svg .seg2{fill:var(--seg2)}svg .seg3{fill:var(--seg3)}
svg .pass.ci{fill:var(--pass)}svg .fail.ci{fill:var(--fail)}svg .inconclusive.ci{fill:var(--inconclusive)}
svg .info.ci{fill:var(--info)}
svg .est{stroke:var(--panel);stroke-width:2}
.about details{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:8px 14px;margin-top:10px}
.about summary{cursor:pointer;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0;font-size:14px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
@media (max-width:640px){main{padding:12px 10px 30px}h1{font-size:21px}
dl{grid-template-columns:1fr}dt{margin-top:6px}
table.checks thead{display:none}
table.checks tr{display:grid;grid-template-columns:1fr 1fr 7.5em;grid-template-areas:"metric metric verdict"
"at at change" "ref cand budget" "interval interval interval";padding:9px 12px;border-bottom:1px solid var(--grid);gap:1px 8px}
table.checks tbody tr:last-child{border-bottom:0}
table.checks td{display:block;border:0;padding:0;white-space:normal;min-width:0;text-align:left}
td.metric{grid-area:metric;font-weight:600}td.at{grid-area:at;color:var(--muted)}td.verdict{grid-area:verdict;text-align:right}
td.change{grid-area:change;text-align:right}td.ref{grid-area:ref}td.cand{grid-area:cand}
td.budget{grid-area:budget;text-align:right}td.interval{grid-area:interval}
td.ref::before{content:"ref ";color:var(--muted)}td.cand::before{content:"cand ";color:var(--muted)}
td.budget::before{content:"budget ";color:var(--muted)}td.interval svg{display:inline-block;vertical-align:middle;margin-right:6px}}
"""
