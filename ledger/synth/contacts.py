"""Billing contacts of the synthetic clients: email, phone, postal address, language, opt-out.

Contacts are drawn from their own random stream, after every other draw, so adding them left the
invoices, payments and actions of a seed unchanged. What the draws aim at:

* most clients have an email and a phone; some only a phone (reminders then go by SMS or call),
  a few neither (a call task, a letter at most);
* French and Belgian clients write in French; German, Spanish and Italian clients mostly in English;
  a few French clients ask for English, and some rows leave the language empty (= French);
* a few clients opted out of automated reminders;
* addresses and phones follow each country's form (postcode before the town, the international
  dialling code); emails are on a domain made from the client's name, accents dropped.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from ledger.synth.params import COUNTRIES

_DIAL = {"FR": "+33", "BE": "+32", "DE": "+49", "ES": "+34", "IT": "+39"}
_TLD = {"FR": "fr", "BE": "be", "DE": "de", "ES": "es", "IT": "it"}
_COUNTRY_NAME = {"FR": "", "BE": "BELGIQUE", "DE": "ALLEMAGNE", "ES": "ESPAGNE", "IT": "ITALIE"}
_STREETS = {
    "FR": ("rue de la République", "avenue Jean Jaurès", "boulevard Gambetta", "rue Victor Hugo",
           "place de l'Église", "chemin des Prés", "rue du Général Leclerc", "allée des Tilleuls",
           "rue Émile Zola", "quai de la Saône"),
    "BE": ("rue Royale", "chaussée de Louvain", "avenue Louise", "rue des Béguines"),
    "DE": ("Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Gartenweg"),
    "ES": ("Calle Mayor", "Avenida de la Constitución", "Calle de Alcalá", "Paseo de Gracia"),
    "IT": ("Via Roma", "Corso Vittorio Emanuele", "Via Garibaldi", "Piazza Duomo"),
}
_TOWNS = {
    "FR": (("69002", "Lyon"), ("59000", "Lille"), ("44000", "Nantes"), ("35000", "Rennes"),
           ("37000", "Tours"), ("21000", "Dijon"), ("51100", "Reims"), ("57000", "Metz"),
           ("49000", "Angers"), ("30000", "Nîmes"), ("87000", "Limoges"), ("80000", "Amiens"),
           ("29200", "Brest"), ("64000", "Pau"), ("74000", "Annecy"), ("14000", "Caen")),
    "BE": (("1000", "Bruxelles"), ("4000", "Liège"), ("5000", "Namur"), ("7000", "Mons")),
    "DE": (("10115", "Berlin"), ("50667", "Köln"), ("80331", "München"), ("60311", "Frankfurt am Main")),
    "ES": (("28013", "Madrid"), ("08002", "Barcelona"), ("46001", "Valencia"), ("41001", "Sevilla")),
    "IT": (("20121", "Milano"), ("00184", "Roma"), ("10121", "Torino"), ("40121", "Bologna")),
}
_MAILBOXES = {"fr": ("compta", "comptabilite", "factures", "fournisseurs", "tresorerie"),
              "en": ("accounts", "accounts.payable", "invoices", "billing", "finance")}
_PUBLIC_MAILBOX = "tresorerie"
# Of clients: email and phone, phone only, email only, neither.
_REACH_P = np.array([.76, .12, .05, .07])
# Probability of English by country (FR, BE, DE, ES, IT).
_ENGLISH_P = np.array([.04, .10, .85, .70, .75])
_EMPTY_LANGUAGE_P = .15   # of French-speaking clients: the export leaves the column empty
_OPT_OUT_P = .03
_NO_ADDRESS_P = .06


def _slug(name: str) -> str:
    """``'Bâtiment Faure SAS'`` -> ``'batiment-faure'``: the legal form dropped, accents folded."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = [w for w in ascii_name.lower().replace(".", " ").replace("'", " ").split()
             if w not in ("sas", "sarl", "sa", "srl", "gmbh", "sl", "s", "r", "l", "de", "des", "du")]
    return "-".join(words) or "client"


def make_contacts(rng: np.random.Generator, names: np.ndarray, country: np.ndarray,
                  public: np.ndarray) -> dict[str, np.ndarray]:
    """The contact columns of every client (``None`` where a client has none).

    Args:
        rng: the contacts' own stream.
        names: client names.
        country: index into ``COUNTRIES`` per client.
        public: whether each client is a public body (a treasury mailbox, a landline).
    """
    n = len(names)
    reach = rng.choice(4, size=n, p=_REACH_P)
    english = rng.random(n) < _ENGLISH_P[country]
    empty_language = rng.random(n) < _EMPTY_LANGUAGE_P
    opt_out = rng.random(n) < _OPT_OUT_P
    no_address = rng.random(n) < _NO_ADDRESS_P
    box = rng.integers(0, 5, n)
    mobile = rng.random(n) < .55
    digits = rng.integers(0, 100, (n, 4))
    number = rng.integers(1, 120, n)
    street = rng.integers(0, 10, n)
    town = rng.integers(0, 16, n)

    add = np.strings.add
    codes = np.array(COUNTRIES)[country]
    lang = np.where(english, "en", "fr")
    language = np.where(~english & empty_language, None, lang).astype(object)

    # Email: a mailbox at a domain made from the name (each distinct name slugged once).
    uniq, inverse = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    slugs = np.array([_slug(str(u)) for u in uniq])[inverse]
    boxes = np.where(public, _PUBLIC_MAILBOX, np.where(english, np.array(_MAILBOXES["en"])[box],
                                                       np.array(_MAILBOXES["fr"])[box]))
    tld = np.array([_TLD[c] for c in COUNTRIES])[country]
    email = np.where(np.isin(reach, (0, 2)), add(add(add(add(boxes, "@"), slugs), "."), tld), None).astype(object)

    # Phone: the dialling code, a leading digit (French mobiles 6, landlines 1), four pairs of digits.
    lead = np.where(codes == "FR", np.where(mobile & ~public, "6", "1"), (2 + box).astype(str))
    pairs = np.char.zfill(digits.astype(str), 2)
    phone = add(add(add(np.array([_DIAL[c] for c in COUNTRIES])[country], " "), lead), " ")
    phone = add(add(add(add(add(add(add(phone, pairs[:, 0]), " "), pairs[:, 1]), " "), pairs[:, 2]), " "), pairs[:, 3])
    phone = np.where(np.isin(reach, (0, 1)), phone, None).astype(object)

    # Postal address: name, street line (number after the street in DE/ES/IT), postcode and town,
    # the country for mail abroad.
    road = np.empty(n, dtype=object)
    place = np.empty(n, dtype=object)
    foreign = np.empty(n, dtype=object)
    for k, code in enumerate(COUNTRIES):
        rows = country == k
        streets, towns = np.array(_STREETS[code]), _TOWNS[code]
        post = np.array([f"{pc} {city.upper() if code == 'FR' else city}" for pc, city in towns])
        r = streets[street[rows] % len(streets)]
        num = number[rows].astype(str)
        road[rows] = add(add(r, " "), num) if code in ("DE", "IT", "ES") else add(add(num, " "), r)
        place[rows] = post[town[rows] % len(towns)]
        foreign[rows] = ("\n" + _COUNTRY_NAME[code]) if _COUNTRY_NAME[code] else ""
    lines = add(add(add(add(np.asarray(names, dtype=str), "\n"), road.astype(str)), "\n"), place.astype(str))
    address = np.where(no_address, None, add(lines, foreign.astype(str))).astype(object)
    return {"email": email, "phone": phone, "postal_address": address, "language": language,
            "opt_out": opt_out}
