"""The citizen's insight as a printable Danish letter (``advisering insight --format html``).

Plain, accessible HTML: ``lang="da"``, one ``h1`` and sections under ``h2``,
one table with a caption and ``th scope`` for every column and row, print
CSS, and nothing from outside (no fonts, images or scripts, no script at
all). Every value is escaped. The letter explains what advis is and is not:
decision support for the caseworkers who already have a case with the
citizen, never a decision.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from advisering.insight.report import MUNICIPAL_TIME, Disclosure, InsightReport
from advisering.labels import department_name, event_name

STYLE = """
body { font-family: Georgia, "Times New Roman", serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #111; background: #fff; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
caption { text-align: left; font-weight: bold; padding: 0.5rem 0; }
th, td { border: 1px solid #444; padding: 0.35rem 0.5rem; vertical-align: top; text-align: left; }
thead th { background: #e8e8e8; }
.quiet { color: #333; font-size: 0.9rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  thead { display: table-header-group; }
  tr { page-break-inside: avoid; }
  h2 { page-break-after: avoid; }
}
"""


def _when(text: str) -> str:
    """An ISO time as the letter writes it: 30.11.2026 kl. 08.20 (Danish time)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(MUNICIPAL_TIME)
    return f"{moment:%d.%m.%Y} kl. {moment:%H.%M}"


def _day(day: dt.date | None) -> str:
    return f"{day:%d.%m.%Y}" if day else ""


def _period(report: InsightReport) -> str:
    if report.period_from and report.period_to:
        return f"fra {_day(report.period_from)} til og med {_day(report.period_to)}"
    if report.period_from:
        return f"fra {_day(report.period_from)} og frem"
    if report.period_to:
        return f"til og med {_day(report.period_to)}"
    return "i hele den periode, kommunen gemmer oplysningerne"


def _trigger(d: Disclosure) -> str:
    origin = (department_name(d.trigger.department) if d.trigger.department
              else f"registeret {d.trigger.source}")
    return (f"{escape(event_name(d.trigger.type).capitalize())} ({escape(d.trigger.type)})"
            f"<br>hos {escape(origin)}, {escape(_when(d.trigger.time))}")


def _row(d: Disclosure) -> str:
    title = escape(d.rule_title) if d.rule_title else escape(d.rule)
    told = f"{escape(department_name(d.told.department).capitalize())}, enhed {escape(d.told.unit)}"
    return (
        "<tr>"
        f'<th scope="row">{escape(_when(d.disclosed_at))}</th>'
        f"<td>{title}<br><span class=\"quiet\">regel {escape(d.rule)}</span></td>"
        f"<td>{escape(d.legal_basis)}</td>"
        f"<td>{_trigger(d)}</td>"
        f"<td>{told}</td>"
        f"<td>{escape(d.case.id)}</td>"
        f"<td>{escape(d.message)}</td>"
        "</tr>"
    )


def _table(report: InsightReport) -> str:
    if not report.disclosures:
        return ("<p>Vi har ikke sendt noget advis om dig i perioden. Ingen medarbejder i "
                "kommunen har fået besked om dig gennem advis.</p>")
    head = "".join(f'<th scope="col">{name}</th>' for name in (
        "Hvornår", "Regel", "Hjemmel (lovgrundlag)", "Hvad skete der, og hvor",
        "Hvem fik besked", "Om hvilken af deres sager", "Beskeden"))
    rows = "\n".join(_row(d) for d in report.disclosures)
    cut = ("<p><strong>Listen er ikke fuldstændig:</strong> der var flere advis, end et svar "
           "kan rumme. Bed om en kortere periode for at se resten.</p>"
           if report.truncated else "")
    return (f"<table>\n<caption>Advis om dig {escape(_period(report))} "
            f"({report.count} i alt)</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody>\n</table>\n{cut}")


def render_letter(report: InsightReport, municipality: str = "Kommunen") -> str:
    """The whole letter as one HTML document (UTF-8 text)."""
    return f"""<!DOCTYPE html>
<html lang="da">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Indsigt: advis om dig</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<p class="quiet">{escape(municipality)} · udskrevet {escape(_when(report.generated_at))}</p>
<h1>Indsigt i advis om dig</h1>
</header>
<main>
<section aria-labelledby="hvad">
<h2 id="hvad">Hvad er advis?</h2>
<p>Når noget sker i én af kommunens afdelinger, som en medarbejder i en anden afdeling bør
kende for at kunne hjælpe dig, kan kommunens system sende et kort advis (en besked) til den
medarbejder. Beskeden går kun til medarbejdere, der allerede har en sag med dig, og den
fortæller kun, hvad der skete og hvornår &mdash; aldrig indholdet af den anden sag.</p>
<p>Hvert advis sendes efter en fast regel, som kommunen har besluttet, og med en
hjemmel i loven. Her kan du se hvert advis, der er sendt om dig: hvornår, efter hvilken regel
og hjemmel, hvad der udløste det, og hvem der fik besked om hvilken af deres sager.</p>
</section>
<section aria-labelledby="ikke">
<h2 id="ikke">Hvad advis ikke er</h2>
<p>Et advis er en hjælp til medarbejderen, aldrig en afgørelse. Det ændrer ikke din sag og
træffer ingen beslutning om dig. Enhver afgørelse træffes af en medarbejder efter de
almindelige regler, og du kan klage over den som over enhver anden afgørelse.</p>
</section>
<section aria-labelledby="liste">
<h2 id="liste">Advis om dig</h2>
{_table(report)}
</section>
<section aria-labelledby="rettigheder">
<h2 id="rettigheder">Dine rettigheder</h2>
<p>Du har ret til indsigt i de oplysninger, kommunen behandler om dig
(databeskyttelsesforordningens artikel 15), og du kan bede om at få urigtige oplysninger
rettet. Har du spørgsmål, kan du kontakte kommunen eller kommunens databeskyttelsesrådgiver.
Du kan også klage til Datatilsynet.</p>
</section>
</main>
</body>
</html>
"""
