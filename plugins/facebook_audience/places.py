"""Place names people type, to the codes Meta's customer-file fields want (ST, COUNTRY).

The state and province tables are the ones Meta's own parameter builder maps
(facebook/capi-param-builder, `stringUtil.js`: US states, DC and Canadian provinces and
territories to their two-letter postal codes); names are looked up as letters only, accents
folded ("Québec" -> "quebec" -> "qc"). Country names are the common English names and native
spellings of the countries most audiences hold; anything else must be sent as its ISO 3166-1
alpha-2 code.
"""

from __future__ import annotations

import unicodedata

US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "districtofcolumbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi", "minnesota": "mn",
    "mississippi": "ms", "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv",
    "newhampshire": "nh", "newjersey": "nj", "newmexico": "nm", "newyork": "ny",
    "northcarolina": "nc", "northdakota": "nd", "ohio": "oh", "oklahoma": "ok",
    "oregon": "or", "pennsylvania": "pa", "rhodeisland": "ri", "southcarolina": "sc",
    "southdakota": "sd", "tennessee": "tn", "texas": "tx", "utah": "ut", "vermont": "vt",
    "virginia": "va", "washington": "wa", "westvirginia": "wv", "wisconsin": "wi",
    "wyoming": "wy",
}
CA_PROVINCES = {
    "alberta": "ab", "britishcolumbia": "bc", "manitoba": "mb", "newbrunswick": "nb",
    "newfoundlandandlabrador": "nl", "newfoundland": "nl", "novascotia": "ns",
    "ontario": "on", "princeedwardisland": "pe", "quebec": "qc", "saskatchewan": "sk",
    "northwestterritories": "nt", "nunavut": "nu", "yukon": "yt",
}
#: state / province name (letters only) -> two-letter code
STATE_CODES = {**CA_PROVINCES, **US_STATES}

#: country names (letters only) -> ISO 3166-1 alpha-2
COUNTRY_CODES = {
    "unitedstates": "us", "unitedstatesofamerica": "us", "usa": "us", "america": "us",
    "unitedkingdom": "gb", "uk": "gb", "greatbritain": "gb", "england": "gb",
    "scotland": "gb", "wales": "gb", "canada": "ca", "australia": "au", "germany": "de",
    "deutschland": "de", "france": "fr", "spain": "es", "espana": "es", "italy": "it",
    "italia": "it", "netherlands": "nl", "holland": "nl", "ireland": "ie", "newzealand": "nz",
    "mexico": "mx", "brazil": "br", "brasil": "br", "india": "in", "japan": "jp",
    "china": "cn", "southafrica": "za", "sweden": "se", "norway": "no", "denmark": "dk",
    "finland": "fi", "switzerland": "ch", "schweiz": "ch", "suisse": "ch", "austria": "at",
    "osterreich": "at", "belgium": "be", "portugal": "pt", "poland": "pl", "polska": "pl",
    "argentina": "ar", "chile": "cl", "colombia": "co", "peru": "pe", "singapore": "sg",
    "southkorea": "kr", "korea": "kr", "israel": "il", "turkey": "tr", "turkiye": "tr",
    "greece": "gr", "czechia": "cz", "czechrepublic": "cz", "hungary": "hu",
    "romania": "ro", "philippines": "ph", "indonesia": "id", "malaysia": "my",
    "thailand": "th", "vietnam": "vn", "unitedarabemirates": "ae", "uae": "ae",
    "saudiarabia": "sa", "egypt": "eg", "nigeria": "ng", "kenya": "ke", "ukraine": "ua",
}


def letters_key(text: str) -> str:
    """Lower-case a-z only, accents folded: the key the name tables are looked up by
    ("New York" -> "newyork", "Québec" -> "quebec", "U.S.A." -> "usa")."""
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in folded if "a" <= ch <= "z")
