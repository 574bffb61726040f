"""Dutch and English: a small message catalogue, chosen by cookie, then Accept-Language."""

from __future__ import annotations

from starlette.requests import HTTPConnection

LANGUAGES = ("nl", "en")
DEFAULT = "en"
COOKIE = "teamnl_lang"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "app.title": "ISO NL dashboard",
        "nav.overview": "Overview",
        "nav.markets": "Markets",
        "nav.map": "Map",
        "nav.findings": "Findings",
        "nav.logout": "Sign out",
        "nav.language": "Nederlands",
        "login.title": "Sign in",
        "login.email": "E-mail address",
        "login.password": "Password",
        "login.submit": "Sign in",
        "login.failed": "E-mail address or password is wrong, or the account is disabled.",
        "login.throttled": "Too many failed sign-ins. Please wait a few minutes and try again.",
        "bundle.missing": "Charts, the map outlines and live updates are unavailable: the "
        "front-end bundle was not built (scripts/build-frontend.sh).",
        "live.connecting": "Connecting to live updates…",
        "live.connected": "Live",
        "live.lost": "Live updates interrupted; reconnecting…",
        "overview.title": "Network overview",
        "overview.initiatives": "Initiatives",
        "overview.activity": "Activity over time",
        "overview.coherence": "Coherence score",
        "overview.events": "Latest events",
        "overview.findings": "Open findings",
        "overview.all_findings": "All open findings",
        "overview.no_events": "No events yet.",
        "initiative.budget": "Budget spent",
        "initiative.of": "of",
        "initiative.targets": "Targets",
        "initiative.events": "Events",
        "markets.title": "Markets",
        "markets.country": "Country",
        "markets.initiatives": "Initiatives active",
        "markets.events": "Events",
        "markets.last": "Last activity",
        "markets.none": "No market activity yet.",
        "market.title": "Market",
        "reading.period": "Period",
        "reading.as_of": "as of",
        "reading.apply": "Show",
        "reading.past": "Findings as the rules saw them on this date (nothing stored).",
        "reading.illustrative": "Dates, amounts and head counts the letter does not state are "
        "illustrative in the seeded demo.",
        "map.named": "named of",
        "map.domestic": "Preparation in the Netherlands",
        "market.complementarity": "Initiatives working this market together",
        "market.preparation": "Prepared in the Netherlands",
        "market.none": "No activity in this period.",
        "map.title": "Cities of Opportunity and activities",
        "map.covered": "City with a mission or activity",
        "map.uncovered": "City without activity",
        "map.coverage": "Coverage",
        "map.activity": "Countries with activity",
        "map.city": "City",
        "map.tier": "Tier",
        "map.last": "Last activity",
        "findings.title": "Findings",
        "findings.rule": "Rule",
        "findings.severity": "Severity",
        "findings.state": "State",
        "findings.raised": "Raised",
        "findings.summary": "Finding",
        "findings.acknowledge": "Acknowledge",
        "findings.resolve": "Resolve",
        "findings.none": "No findings.",
        "findings.all": "All",
        "state.open": "open",
        "state.acknowledged": "acknowledged",
        "state.resolved": "resolved",
        "severity.info": "info",
        "severity.warning": "warning",
        "severity.critical": "critical",
        "event.time": "Time",
        "event.type": "Type",
        "event.title": "Title",
        "event.source": "Source",
        "error.forbidden": "You may not do this.",
    },
    "nl": {
        "app.title": "ISO NL-dashboard",
        "nav.overview": "Overzicht",
        "nav.markets": "Markten",
        "nav.map": "Kaart",
        "nav.findings": "Bevindingen",
        "nav.logout": "Afmelden",
        "nav.language": "English",
        "login.title": "Aanmelden",
        "login.email": "E-mailadres",
        "login.password": "Wachtwoord",
        "login.submit": "Aanmelden",
        "login.failed": "E-mailadres of wachtwoord onjuist, of het account is uitgeschakeld.",
        "login.throttled": "Te veel mislukte aanmeldpogingen. Wacht enkele minuten.",
        "bundle.missing": "Grafieken, de landkaart en live-updates zijn niet beschikbaar: de "
        "front-endbundel is niet gebouwd (scripts/build-frontend.sh).",
        "live.connecting": "Verbinden met live-updates…",
        "live.connected": "Live",
        "live.lost": "Live-updates onderbroken; opnieuw verbinden…",
        "overview.title": "Overzicht van het netwerk",
        "overview.initiatives": "Initiatieven",
        "overview.activity": "Activiteit in de tijd",
        "overview.coherence": "Samenhangscore",
        "overview.events": "Laatste gebeurtenissen",
        "overview.findings": "Open bevindingen",
        "overview.all_findings": "Alle open bevindingen",
        "overview.no_events": "Nog geen gebeurtenissen.",
        "initiative.budget": "Besteed budget",
        "initiative.of": "van",
        "initiative.targets": "Doelen",
        "initiative.events": "Gebeurtenissen",
        "markets.title": "Markten",
        "markets.country": "Land",
        "markets.initiatives": "Actieve initiatieven",
        "markets.events": "Gebeurtenissen",
        "markets.last": "Laatste activiteit",
        "markets.none": "Nog geen marktactiviteit.",
        "market.title": "Markt",
        "reading.period": "Periode",
        "reading.as_of": "per",
        "reading.apply": "Toon",
        "reading.past": "Bevindingen zoals de regels ze op deze datum zagen (niets opgeslagen).",
        "reading.illustrative": "Data, bedragen en aantallen die de brief niet noemt zijn "
        "illustratief in de demo.",
        "map.named": "genoemd van",
        "map.domestic": "Voorbereiding in Nederland",
        "market.complementarity": "Initiatieven die samen in deze markt werken",
        "market.preparation": "Voorbereid in Nederland",
        "market.none": "Geen activiteit in deze periode.",
        "map.title": "Cities of Opportunity en activiteiten",
        "map.covered": "Stad met activiteit",
        "map.uncovered": "Stad zonder activiteit",
        "map.coverage": "Dekking",
        "map.activity": "Landen met activiteit",
        "map.city": "Stad",
        "map.tier": "Niveau",
        "map.last": "Laatste activiteit",
        "findings.title": "Bevindingen",
        "findings.rule": "Regel",
        "findings.severity": "Ernst",
        "findings.state": "Status",
        "findings.raised": "Gemeld",
        "findings.summary": "Bevinding",
        "findings.acknowledge": "Bevestigen",
        "findings.resolve": "Oplossen",
        "findings.none": "Geen bevindingen.",
        "findings.all": "Alle",
        "state.open": "open",
        "state.acknowledged": "bevestigd",
        "state.resolved": "opgelost",
        "severity.info": "info",
        "severity.warning": "waarschuwing",
        "severity.critical": "kritiek",
        "event.time": "Tijd",
        "event.type": "Soort",
        "event.title": "Titel",
        "event.source": "Bron",
        "error.forbidden": "Dit mag u niet doen.",
    },
}


def negotiate(conn: HTTPConnection) -> str:
    chosen = conn.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for language, _ in _accepted(conn.headers.get("accept-language", "")):
        primary = language.split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def _accepted(header: str) -> list[tuple[str, float]]:
    ranges = []
    for part in header.split(","):
        language, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if language:
            ranges.append((language, quality))
    return sorted(ranges, key=lambda item: -item[1])


def translator(language: str):  # type: ignore[no-untyped-def]
    catalogue = MESSAGES.get(language, MESSAGES[DEFAULT])

    def translate(key: str) -> str:
        return catalogue.get(key) or MESSAGES[DEFAULT].get(key, key)

    return translate
