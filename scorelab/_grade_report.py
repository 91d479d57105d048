"""The class grader's HTML output: one small report per notebook (for its student, in Chinese)
and a class summary for the lecturer (points distribution, the parts failed most often and
their most common messages). Plain HTML with inline styles, no scripts, everything escaped."""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

__all__ = ["report_name", "write_reports"]

_STATUS_ZH = {"pass": "通过", "fail": "未通过", "todo": "待完成", "missing": "缺少答案", "error": "无法检查",
              "none": "无", "skipped": "未运行", "": ""}
_COLOR = {"pass": "#1a7f37", "fail": "#cf222e", "todo": "#6e7781", "missing": "#9a6700", "error": "#8250df"}
_STYLE = ("body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
          "color:#1f2328}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #d0d7de;padding:6px;"
          "vertical-align:top;text-align:left}th{background:#f6f8fa}.note{background:#fff8c5;padding:6px 10px;"
          "margin:4px 0;border-left:4px solid #d4a72c}.small{color:#6e7781;font-size:90%}")


def report_name(notebook: str) -> str:
    """A file name for a notebook's report (its path with the separators replaced)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", notebook.replace("/", "__").replace("\\", "__")).strip("_.")
    return (stem or "notebook")[:150] + ".html"


def _e(text) -> str:
    return html.escape(str(text)).replace("\n", "<br>")


def _badge(status: str) -> str:
    color = _COLOR.get(status, "#6e7781")
    return f'<b style="color:{color}">{_e(_STATUS_ZH.get(status, status))}</b>'


_NOTES_ZH = [  # the grader's notes (English, for the lecturer) as the student reads them
    (r"^not copied into the sandbox \(too large\): (.*)$", r"文件太大，没有复制到评分环境中：\1"),
    (r"^no exercise detected.*$", "没有识别出练习（笔记本里没有已知题目的 check(...) 单元格，文件名里也没有练习编号）"
                                  "，没有评分。"),
    (r"^the notebook ran past the whole-notebook limit \(([^)]*)\).*$",
     r"笔记本运行超过了整个笔记本的时间限制（\1），被终止；在那之前定义的答案也可能没有保存下来。"),
    (r"^the notebook's process ended without a result \(exit code (.*)\)$",
     r"运行笔记本的进程意外结束，没有留下结果（退出码 \1）：例如笔记本杀掉了自己的父进程。"),
    (r"^kernel died$", "内核（kernel）在运行中死掉了（例如调用了 os._exit，或者内存耗尽），之后的单元格没有运行，答案"
                       "没有保存。"),
    (r"^the whole-notebook time limit \(([^)]*)\) was reached: cells from index (\d+) on were skipped$",
     r"达到了整个笔记本的时间限制（\1）：从第 \2 个单元格起没有运行。"),
    (r"^(\d+) cell\(s\) stopped at the per-cell limit \(([^)]*)\)$", r"有 \1 个单元格超过了单个单元格的时间限制（\2）"
                                                                      "，被中断。"),
    (r"^TAMPERING: .*restored: (.*)$", r"笔记本修改或删除了提交的文件（已恢复）：\1"),
    (r"^the checking process stopped early.*$", "检查进程提前结束，后面的题目没有检查完（例如某个答案在被调用时终止了"
                                                "检查进程）。"),
    (r"^SUSPICIOUS: the notebook displayed a pass for (\S+) .*$",
     r"笔记本里显示 \1 通过，但评分程序自己的检查没有确认：只有评分程序的检查结果计分。"),
]


def _note_zh(note: str) -> str:
    for pattern, replacement in _NOTES_ZH:
        if re.match(pattern, note):
            return re.sub(pattern, replacement, note)
    return note


def _student_report(res) -> str:
    rows = []
    for r in res.rows:
        hidden = ""
        if r.hidden_check not in ("none", ""):
            hidden = (f"<br><span class=small>隐藏检查（hidden check）：{_badge(r.hidden_check)} "
                      f"{_e(r.hidden_message)}</span>")
        shown = ""
        if r.notebook_showed and r.notebook_showed != r.status:
            showed = _e(_STATUS_ZH.get(r.notebook_showed, r.notebook_showed))
            shown = (f"<br><span class=small>笔记本里显示的结果是「{showed}」，"
                     "但评分以评分程序自己重新运行的检查为准。</span>")
        rows.append(f"<tr><td>{_e(r.part)}</td><td>{_e(r.title)}</td><td>{_badge(r.status)}</td>"
                    f"<td>{r.points:g} / {r.max_points:g}</td><td>{_e(r.message)}{hidden}{shown}</td></tr>")
    notes = "".join(f'<div class="note">{_e(_note_zh(n))}</div>' for n in res.notes)
    errors = "".join(f"<li>单元格 {int(e.get('cell', -1))}：{_e(e.get('ename'))}: {_e(e.get('evalue'))}</li>"
                     for e in res.cell_errors[:20])
    errors = f"<h2>运行时出错的单元格</h2><ul>{errors}</ul>" if errors else ""
    table = ("<table><tr><th>题目</th><th>内容</th><th>状态</th><th>得分</th><th>检查结果</th></tr>"
             + "".join(rows) + "</table>") if rows else "<p>没有找到可以评分的题目。</p>"
    return (f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>{_e(res.notebook)}</title>"
            f"<style>{_STYLE}</style><h1>评分报告</h1><p><b>{_e(res.notebook)}</b>：总分 "
            f"<b>{res.points:g} / {res.max_points:g}</b></p>"
            "<p class=small>评分程序在隔离的环境里从头运行你的笔记本，然后用它自己的检查代码（不是笔记本里显示的结果）"
            "检查每道题，并在你的笔记本没有见过的输入上再检查一次（隐藏检查）。</p>"
            f"{notes}{table}{errors}</html>")


def _mask(message: str) -> str:
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", message)[:200]


def _summary(results, sandbox_line) -> str:
    totals = [r.points for r in results if r.rows]
    max_total = max((r.max_points for r in results), default=0)
    hist = Counter(totals)
    top = max(hist.values(), default=1)
    bars = "".join(
        f"<tr><td>{p:g}</td><td><div style='background:#0969da;height:14px;width:{40 * n / top:.1f}rem'></div></td>"
        f"<td>{n}</td></tr>" for p, n in sorted(hist.items()))
    per_part: dict[str, list] = {}
    for res in results:
        for r in res.rows:
            per_part.setdefault(r.part, []).append(r)
    lines = []
    for part, rows in sorted(per_part.items(), key=lambda kv: -sum(r.status != "pass" for r in kv[1])):
        failed = [r for r in rows if r.status != "pass"]
        msgs = Counter(_mask(r.hidden_message if r.status == "fail" and r.hidden_check == "fail" else r.message)
                       for r in failed if r.status in ("fail", "error", "missing"))
        common = "".join(f"<li>{n} ×: {_e(m)}</li>" for m, n in msgs.most_common(3))
        lines.append(f"<tr><td>{_e(part)}</td><td>{_e(rows[0].title)}</td><td>{len(failed)} / {len(rows)}</td>"
                     f"<td>{sum(r.status == 'todo' for r in rows)}</td><td><ul>{common}</ul></td></tr>")
    flagged = "".join(f"<li><a href='{report_name(r.notebook)}'>{_e(r.notebook)}</a>: "
                      f"{_e('; '.join(n for n in r.notes if n.startswith(('TAMPERING', 'SUSPICIOUS'))))}</li>"
                      for r in results if any(n.startswith(("TAMPERING", "SUSPICIOUS")) for n in r.notes))
    students = "".join(f"<tr><td><a href='{report_name(r.notebook)}'>{_e(r.notebook)}</a></td>"
                       f"<td>{r.points:g} / {r.max_points:g}</td><td>{_e('; '.join(r.notes))}</td></tr>"
                       for r in results)
    mode, reason = sandbox_line
    sandbox = ("bubblewrap" if mode == "bwrap" else "FALLBACK (no bubblewrap)") + f": {reason}"
    mean = sum(totals) / len(totals) if totals else 0.0
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>Class summary</title><style>{_STYLE}</style>"
            f"<h1>Class summary</h1><p>{len(results)} notebooks, mean {mean:.2f} / {max_total:g} points. "
            f"Sandbox: {_e(sandbox)}.</p>"
            f"<h2>Points distribution</h2><table><tr><th>points</th><th></th><th>notebooks</th></tr>{bars}</table>"
            "<h2>Parts, most often failed first</h2><table><tr><th>part</th><th>title</th><th>not passed</th>"
            f"<th>to do</th><th>most common messages</th></tr>{''.join(lines)}</table>"
            + (f"<h2>Flagged notebooks</h2><ul>{flagged}</ul>" if flagged else "")
            + f"<h2>Notebooks</h2><table><tr><th>notebook</th><th>points</th><th>notes</th></tr>{students}</table>"
            "</html>")


def write_reports(folder: Path, results, *, sandbox_line=("", "")) -> None:
    """Write ``folder/<notebook>.html`` for every notebook and ``folder/index.html``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for res in results:
        (folder / report_name(res.notebook)).write_text(_student_report(res), encoding="utf-8")
    (folder / "index.html").write_text(_summary(results, sandbox_line), encoding="utf-8")
