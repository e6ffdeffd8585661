"""The completion record as a PDF, written with fpdf2 (pure Python; docs/dashboard.md says why).

The PDF says what the printable page says — run, client, inputs, every step with its
outcome, who, when and evidence — under the MSP's branding. Text is set in DejaVu Sans
when Debian's ``fonts-dejavu-core`` is installed (any language); without it, in the PDF
core font Helvetica, which holds Latin-1 only, so other characters are replaced. A table
row must fit one page, so a cell longer than that (a pasted log as evidence) is cut, saying
how much is left out; the record page shows it whole.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from hub.api.dashboard.render import fmt_short, fmt_time, show
from hub.api.schemas import RunDetail, StepOut
from hub.config.branding import Branding, contrast, rgb

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT = "DejaVu"
CORE_FONT = "Helvetica"
COLUMNS = ("#", "Step", "Outcome", "Who", "When (UTC)", "Evidence / note")
WIDTHS = (6, 40, 17, 25, 24, 58)  # relative column widths
_PLAIN = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'",
                        "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00b7": "-"})
# A table row must fit on one page (fpdf2 refuses a taller one), so a cell holds at most
# ROW_MM of lines; a longer text is cut in the PDF (the record page has it whole).
ROW_MM = 230.0
SHORT = 200  # characters (with few line breaks) that fit any column: not measured
STEP_PT, STEP_LINE = 8.5, 4.5
PAIR_PT, PAIR_LINE = 9.5, 5.5
OUTCOMES = {"done": "Done", "skipped": "Skipped", "not_applicable": "Not applicable",
            "open": "Open", "locked": "Locked"}


INK = "#1d2330"


def heading_colour(branding: Branding) -> str:
    """The accent for section titles when it reads on white (WCAG AA), else the ink."""
    return branding.accent if contrast(branding.accent, "#ffffff") >= 4.5 else INK


def clip(pdf: FPDF, text: str, width: float, line_mm: float) -> str:
    """As much of ``text`` as fits a ``width`` mm table column in ``ROW_MM`` with the
    current font, lines measured by fpdf2 itself, and how much was left out."""
    if len(text) <= SHORT and text.count("\n") < 10:
        return text
    lines = int(ROW_MM / line_mm)
    wrapped = _lines(pdf, text, width, line_mm)
    if len(wrapped) <= lines:
        return text
    kept, room, notice = 0, lines, ""
    for _ in range(3):  # the notice's own length changes how many lines are left
        notice = f"... ({len(text) - kept} more characters on the record page)"
        room = lines - len(_lines(pdf, notice, width, line_mm))
        kept = sum(len(x) for x in wrapped[:max(room, 0)])
    return "\n".join(wrapped[:max(room, 0)]).rstrip() + notice


def _lines(pdf: FPDF, text: str, width: float, line_mm: float) -> list[str]:
    lines = pdf.multi_cell(w=width, h=line_mm, text=text, dry_run=True, output="LINES")
    assert isinstance(lines, list)  # output="LINES" returns the lines only
    return [str(x) for x in lines]


def font_files(dirs: Sequence[Path] = FONT_DIRS) -> tuple[Path, Path] | None:
    """DejaVu Sans regular and bold, if the system has them."""
    for folder in dirs:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


class _Record(FPDF):
    """A page layout with the branded footer and page numbers."""

    def __init__(self, branding: Branding, fonts: tuple[Path, Path] | None,
                 generated: str) -> None:
        super().__init__(format="A4")
        self.branding = branding
        self.generated = generated
        self.unicode = fonts is not None
        if fonts is not None:
            self.add_font(FONT, "", str(fonts[0]))
            self.add_font(FONT, "B", str(fonts[1]))
        self.family = FONT if fonts is not None else CORE_FONT
        self.set_auto_page_break(auto=True, margin=18)
        self.alias_nb_pages()

    def text_of(self, value: Any) -> str:
        """What the font can draw: all of it in DejaVu, Latin-1 in the core font."""
        text = str(value)
        if self.unicode:
            return text
        return text.translate(_PLAIN).encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(self.family, size=7.5)
        self.set_text_color(110, 110, 110)
        left = self.branding.footer or self.branding.name
        self.cell(0, 4, self.text_of(left), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.cell(0, 4, self.text_of(f"{self.generated} - page {self.page_no()} of {{nb}}"))


def _header(pdf: _Record, run: RunDetail) -> None:
    brand = pdf.branding
    pdf.set_fill_color(*rgb(brand.primary))
    pdf.rect(0, 0, pdf.w, 24, style="F")
    x = pdf.l_margin
    if brand.logo is not None:
        info = pdf.image(io.BytesIO(brand.logo.data), x=x, y=4, h=16)
        x += float(info.rendered_width) + 2
    pdf.set_xy(x + 3, 8)
    pdf.set_font(pdf.family, "B", 15)
    pdf.set_text_color(*rgb(brand.on_primary))
    pdf.cell(0, 8, pdf.text_of(brand.name))
    pdf.set_xy(pdf.l_margin, 30)
    pdf.set_text_color(*rgb(INK))
    pdf.set_font(pdf.family, "B", 16)
    pdf.multi_cell(0, 8, pdf.text_of(f"{run.playbook_title} (v{run.version})"),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(pdf.family, size=10.5)
    client = run.client_name or run.client
    pdf.multi_cell(0, 6, pdf.text_of(f"Completion record for {client} - run #{run.id} - "
                                     f"{run.status.value}"), new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT)
    pdf.set_draw_color(*rgb(brand.accent))
    pdf.set_line_width(0.6)
    pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.w - pdf.r_margin, pdf.get_y() + 2)
    pdf.ln(5)
    # tables below draw with the current colours: plain cells, light grey rules
    pdf.set_fill_color(255, 255, 255)
    pdf.set_draw_color(200, 204, 212)
    pdf.set_line_width(0.2)


def _pairs(pdf: _Record, title: str, rows: Sequence[tuple[str, str]]) -> None:
    if not rows:
        return
    pdf.set_font(pdf.family, "B", 11.5)
    pdf.set_text_color(*rgb(heading_colour(pdf.branding)))
    pdf.cell(0, 8, pdf.text_of(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*rgb(INK))
    pdf.set_font(pdf.family, size=PAIR_PT)
    with pdf.table(col_widths=(30, 70), first_row_as_headings=False,
                   borders_layout="HORIZONTAL_LINES", line_height=PAIR_LINE,
                   cell_fill_mode="NONE") as table:
        for label, value in rows:
            row = table.row()
            pdf.set_font(pdf.family, "B", PAIR_PT)  # measured as it is drawn: bold
            label_text = clip(pdf, pdf.text_of(label), pdf.epw * 0.3, PAIR_LINE)
            pdf.set_font(pdf.family, size=PAIR_PT)
            row.cell(label_text, style=FontFace(emphasis="BOLD"))
            row.cell(clip(pdf, pdf.text_of(value), pdf.epw * 0.7, PAIR_LINE))
    pdf.ln(2)


def _summary(run: RunDetail) -> list[tuple[str, str]]:
    rows = [("Launched", f"{fmt_time(run.launched_at)} by {run.launched_by}")]
    if run.completed_at:
        label = "Cancelled" if run.status.value == "cancelled" else "Completed"
        reason = f" - {run.cancel_reason}" if run.cancel_reason else ""
        rows.append((label, fmt_time(run.completed_at) + reason))
    rows.append(("Progress", f"{run.progress.done} of {run.progress.total} steps finished"))
    if run.ticket:
        rows.append(("Ticket", f"{run.ticket.source} #{run.ticket.id}"))
    return rows


def _evidence(step: StepOut) -> str:
    parts = [step.evidence or ""]
    if step.note:
        parts.append(f"Note: {step.note}")
    if step.skip_reason:
        parts.append(f"Skipped: {step.skip_reason}")
    return "\n".join(p for p in parts if p) or "-"


def _outcome(step: StepOut) -> str:
    """The step's state in words; a finished sign-off says it was approved, and by whom
    is in the Who column."""
    if step.approval is not None:
        state = "Approved" if step.status.value == "done" else OUTCOMES.get(
            step.status.value, step.status.value)
        return f"{state}\n(sign-off, {step.approval.role})"
    return OUTCOMES.get(step.status.value, step.status.value)


def _steps(pdf: _Record, run: RunDetail) -> None:
    pdf.set_font(pdf.family, "B", 11.5)
    pdf.set_text_color(*rgb(heading_colour(pdf.branding)))
    pdf.cell(0, 8, "Steps", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*rgb(INK))
    pdf.set_font(pdf.family, size=STEP_PT)
    heading = FontFace(emphasis="BOLD", color=rgb(pdf.branding.on_primary),
                       fill_color=rgb(pdf.branding.primary))
    with pdf.table(col_widths=WIDTHS, headings_style=heading, line_height=STEP_LINE,
                   text_align="LEFT", cell_fill_mode="NONE") as table:
        head = table.row()
        for title in COLUMNS:
            head.cell(title)
        widths = [pdf.epw * w / sum(WIDTHS) for w in WIDTHS]
        for number, step in enumerate(run.steps, start=1):
            row = table.row()
            values = (number, step.title, _outcome(step),
                      step.done_by or "-", fmt_short(step.done_at) if step.done_at else "-",
                      _evidence(step))
            for value, width in zip(values, widths, strict=True):
                row.cell(clip(pdf, pdf.text_of(value), width, STEP_LINE))


def record_pdf(run: RunDetail, input_titles: Mapping[str, str], branding: Branding, *,
               now: datetime, expires_at: datetime | None = None,
               font_dirs: Sequence[Path] = FONT_DIRS) -> bytes:
    """The run's completion record as PDF bytes.

    Args:
        expires_at: for a shared link, when it ends (said under the title).
        font_dirs: where to look for DejaVu Sans (none found: the Latin-1 core font).
    """
    pdf = _Record(branding, font_files(font_dirs), f"Generated {fmt_time(now)}")
    pdf.set_title(f"Completion record - {run.playbook_title} - {run.client_name or run.client}")
    pdf.set_author(branding.name)
    pdf.set_creator("msphub")
    pdf.set_creation_date(now)
    pdf.add_page()
    _header(pdf, run)
    if expires_at is not None:
        pdf.set_font(pdf.family, size=STEP_PT)
        pdf.cell(0, 5, pdf.text_of(f"Shared read-only; the link expires {fmt_time(expires_at)}."),
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _pairs(pdf, "Summary", _summary(run))
    _pairs(pdf, "Inputs", [(input_titles.get(k, k), show(v)) for k, v in run.inputs.items()])
    _steps(pdf, run)
    return bytes(pdf.output())
