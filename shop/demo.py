"""The sample catalog of `shop demo`: a print shop, a coffee roaster and an author in one."""

from __future__ import annotations

import hashlib
import io
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from sqlalchemy import func, select

from shop.cart.models import ShippingRate, ShippingZone
from shop.catalog.models import DIGITAL, PHYSICAL, Product, ProductImage, TaxClass, Variant
from shop.config import Settings
from shop.db import Database
from shop.downloads import service as downloads
from shop.legal import service as legal
from shop.money import BTC, currency_exponent
from shop.payments.bitcoin.rates import DEMO_RATE

SATS_PER_BTC = 100_000_000

EU = "AT,BE,BG,CY,CZ,DK,EE,ES,FI,FR,GR,HR,HU,IE,IT,LT,LU,LV,MT,NL,PL,PT,RO,SE,SI,SK"

# (slug, title, kind, tax class, description, [(label, sku, price, stock)], colours)
PRODUCTS: list[
    tuple[str, str, str, str, str, list[tuple[str, str, str, int | None]], tuple[str, str]]
] = [
    (
        "harbour-at-dawn",
        "Harbour at Dawn — art print",
        PHYSICAL,
        "standard",
        "A giclée print of boats waiting for the tide, on heavy matte cotton paper.\n\n"
        "Signed on the back. Ships flat in a rigid envelope.",
        [("A4", "PRINT-HARB-A4", "24.00", 12), ("A3", "PRINT-HARB-A3", "39.00", 5)],
        ("#f3d9b1", "#2f4858"),
    ),
    (
        "forest-floor",
        "Forest Floor — art print",
        PHYSICAL,
        "standard",
        "Moss, ferns and a single red mushroom, printed with pigment inks that last a lifetime.",
        [("A4", "PRINT-FOR-A4", "24.00", 8), ("A3", "PRINT-FOR-A3", "39.00", 2)],
        ("#d8e2c5", "#3d5a40"),
    ),
    (
        "night-train",
        "Night Train — art print",
        PHYSICAL,
        "standard",
        "Lit windows of a sleeper train crossing a snowy valley.",
        [("A4", "PRINT-NT-A4", "24.00", 0), ("A3", "PRINT-NT-A3", "39.00", 3)],
        ("#1f2a44", "#f2c14e"),
    ),
    (
        "house-espresso",
        "House Espresso — whole beans",
        PHYSICAL,
        "reduced",
        "Chocolate, hazelnut and a hint of cherry. Roasted every Tuesday, shipped within two days.",
        [("250 g", "COF-ESP-250", "9.50", 40), ("1 kg", "COF-ESP-1000", "32.00", 10)],
        ("#6f4e37", "#e8d5b7"),
    ),
    (
        "ethiopia-guji",
        "Ethiopia Guji — filter roast",
        PHYSICAL,
        "reduced",
        "Bright and floral, with notes of bergamot and apricot. Best as pour-over.",
        [("250 g", "COF-GUJI-250", "11.50", 25)],
        ("#c97b63", "#fff1e0"),
    ),
    (
        "small-hours",
        "The Small Hours — e-book",
        DIGITAL,
        "reduced",
        "A novel about a night-shift baker and the town that wakes up to her bread. "
        "EPUB and PDF, no DRM.",
        [("EPUB + PDF", "EBOOK-SMALL", "7.99", None)],
        ("#3a506b", "#f4f1de"),
    ),
    (
        "field-notes",
        "Field Notes on Printmaking — e-book",
        DIGITAL,
        "reduced",
        "A practical guide to linocut and risograph printing at the kitchen table.",
        [("EPUB + PDF", "EBOOK-FIELD", "12.00", None)],
        ("#8d99ae", "#2b2d42"),
    ),
    (
        "tote-bag",
        "Canvas tote bag",
        PHYSICAL,
        "standard",
        "Heavy organic cotton, screen printed with our harbour motif.",
        [("Natural", "TOTE-NAT", "16.00", 20), ("Black", "TOTE-BLK", "16.00", 4)],
        ("#efe6d8", "#264653"),
    ),
]


def _price(amount: str, currency: str) -> int:
    """The demo's euro price in ``currency``: the same number in a fiat currency, but converted
    at the demo's made-up rate for a shop priced in bitcoin (a print is not 24 BTC), rounded to
    100 sats so prices read like prices."""
    if currency == BTC:
        sats = Decimal(amount) * SATS_PER_BTC / DEMO_RATE
        return int((sats / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * 100
    exponent = currency_exponent(currency)
    return int((Decimal(amount) * (10**exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _artwork(title: str, background: str, foreground: str) -> str:
    """A small abstract illustration, generated so the demo needs no stock photos."""
    seed = hashlib.sha256(title.encode()).digest()
    shapes = []
    for i in range(6):
        x, y, r = 40 + seed[i] * 320 // 255, 40 + seed[i + 6] * 220 // 255, 20 + seed[i + 12] % 60
        opacity = 0.25 + (seed[i + 18] % 60) / 100
        shapes.append(
            f'<circle cx="{x}" cy="{y}" r="{r}" fill="{foreground}" opacity="{opacity:.2f}"/>'
        )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" width="400" height="300">'
        f'<rect width="400" height="300" fill="{background}"/>{"".join(shapes)}'
        f'<rect x="0" y="250" width="400" height="50" fill="{foreground}" opacity="0.15"/></svg>'
    )


def _ebook(title: str, text: str) -> bytes:
    """A small but valid EPUB 3, so the demo's e-books really deliver something."""
    book_id = hashlib.sha256(title.encode()).hexdigest()[:32]
    chapter = (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>"
        + "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n"))
        + "<p>This is a sample file from the demo shop.</p></body></html>"
    )
    files = {
        "META-INF/container.xml": (
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="book.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>"
        ),
        "book.opf": (
            '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" '
            'version="3.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:identifier id="id">urn:uuid:{book_id}</dc:identifier><dc:title>{escape(title)}'
            "</dc:title><dc:language>en</dc:language>"
            '<meta property="dcterms:modified">2026-01-01T00:00:00Z</meta></metadata><manifest>'
            '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
            '<item id="c1" href="chapter.xhtml" media-type="application/xhtml+xml"/></manifest>'
            '<spine><itemref idref="c1"/></spine></package>'
        ),
        "nav.xhtml": (
            '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body>'
            '<nav epub:type="toc"><ol><li><a href="chapter.xhtml">'
            f"{escape(title)}</a></li></ol></nav></body></html>"
        ),
        "chapter.xhtml": chapter,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as epub:
        # The EPUB rule: "mimetype" first and stored uncompressed.
        epub.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, content in files.items():
            epub.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def seed_demo(database: Database, settings: Settings) -> bool:
    """Create the sample catalog once; returns False when a catalog already exists."""
    uploads = settings.instance_path / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    currency = settings.currency
    with database.job_session() as session:
        if session.scalar(select(func.count()).select_from(Product)):
            return False
        standard = TaxClass(
            code="standard", name="Standard rate", rate_bp=1900, category="standard"
        )
        reduced = TaxClass(
            code="reduced", name="Reduced rate (food, books)", rate_bp=700, category="reduced"
        )
        session.add_all([standard, reduced])
        session.flush()
        classes = {"standard": standard, "reduced": reduced}

        home = ShippingZone(name="Germany", countries="DE", position=0)
        home.rates = [
            ShippingRate(
                name="Standard parcel",
                price=_price("4.90", currency),
                free_over=_price("50.00", currency),
                tax_class_id=standard.id,
            ),
            ShippingRate(
                name="Express", price=_price("9.90", currency), tax_class_id=standard.id, position=1
            ),
        ]
        europe = ShippingZone(name="European Union", countries=EU, position=1)
        europe.rates = [
            ShippingRate(
                name="Tracked parcel",
                price=_price("12.90", currency),
                free_over=_price("120.00", currency),
                tax_class_id=standard.id,
            )
        ]
        world = ShippingZone(name="Rest of world", countries="CH,GB,NO,US,CA,AU,JP,NZ", position=2)
        world.rates = [
            ShippingRate(
                name="International parcel",
                price=_price("24.00", currency),
                tax_class_id=standard.id,
            )
        ]
        session.add_all([home, europe, world])

        for position, (slug, title, kind, tax, description, variants, colours) in enumerate(
            PRODUCTS
        ):
            filename = f"demo-{slug}.svg"
            (uploads / filename).write_text(_artwork(title, *colours))
            product = Product(
                slug=slug,
                title=title,
                kind=kind,
                description=description,
                tax_class_id=classes[tax].id,
                position=position,
            )
            product.images = [ProductImage(filename=filename, alt=f"Illustration for {title}")]
            product.variants = [
                Variant(
                    label=label, sku=sku, price=_price(price, currency), on_hand=stock, position=i
                )
                for i, (label, sku, price, stock) in enumerate(variants)
            ]
            session.add(product)
    return True


def seed_ebook_files(database: Database, settings: Settings) -> int:
    """Give each demo e-book without a download a small generated EPUB, so `shop demo`'s
    e-books really deliver. Apart from seed_demo: tests that buy an e-book and expect it to wait
    for the merchant's file keep a catalog without files. Returns how many files were added."""
    added = 0
    with database.job_session() as session:
        for slug, title, kind, _tax, description, *_ in PRODUCTS:
            product = session.scalar(select(Product).where(Product.slug == slug))
            if kind != DIGITAL or product is None or downloads.file_for(session, product.id):
                continue
            downloads.store_file(
                session, product, _ebook(title, description), f"{slug}.epub", settings.instance_path
            )
            added += 1
    return added


# Sample legal texts for the demo, each clearly marked as a sample: a merchant must write (or
# have a lawyer write) their own before selling. German law (the demo is a German shop) is the
# model; the withdrawal information follows the statutory model (Anlage 1 and 2 zu Art. 246a
# EGBGB, Annex I of Directive 2011/83/EU).
SAMPLE_NOTE = (
    "SAMPLE TEXT of the demo shop — not legal advice. Replace it with your own "
    "before you sell anything."
)
SAMPLE_IMPRINT = {
    "legal_name": "Harbour Prints Demo GmbH (sample)",
    "representative": "Ada Example, managing director",
    "address": "Kaiweg 1\n20457 Hamburg\nGermany",
    "email": "hello@shop.example",
    "phone": "",
    "vat_id": "DE000000000 (sample)",
    "registration": "Amtsgericht Hamburg, HRB 000000 (sample)",
}
SAMPLE_PAGES = {
    "imprint": f"""{SAMPLE_NOTE}

Responsible for the content of this website: Ada Example, address as above.

EU online dispute resolution: we are neither obliged nor willing to take part in dispute
resolution proceedings before a consumer arbitration board.""",
    "terms": f"""{SAMPLE_NOTE}

1. Scope
These terms apply to all orders placed in this shop by consumers.

2. Contract
Our product pages are an invitation to order. By clicking "Place order and pay" you make a
binding offer; the contract is concluded when we confirm the order by email or deliver.

3. Prices and payment
All prices include VAT. For deliveries to other EU countries the VAT of the destination country
may apply; the checkout shows the VAT that applies to your order. Shipping costs are shown
before you order. You pay by the method you chose at checkout.

4. Delivery
Physical goods are shipped to the address you give, usually within 2–5 working days. Digital
goods are made available for download on your order page once payment has arrived.

5. Right of withdrawal
Consumers have a right of withdrawal as explained in our withdrawal information.

6. Warranty
The statutory warranty rights apply.""",
    "withdrawal": f"""{SAMPLE_NOTE}

Right of withdrawal
You have the right to withdraw from this contract within 14 days without giving any reason.
The withdrawal period will expire after 14 days from the day on which you acquire, or a third
party other than the carrier and indicated by you acquires, physical possession of the goods.
For digital content not supplied on a tangible medium, it expires 14 days from the day of the
conclusion of the contract.

To exercise the right of withdrawal, you must inform us (Harbour Prints Demo GmbH, Kaiweg 1,
20457 Hamburg, Germany, hello@shop.example) of your decision to withdraw from this contract by
an unequivocal statement (e.g. a letter sent by post or an email). You may use the attached
model withdrawal form, but it is not obligatory. To meet the withdrawal deadline, it is
sufficient for you to send your communication before the withdrawal period has expired.

Effects of withdrawal
If you withdraw from this contract, we shall reimburse to you all payments received from you,
including the costs of delivery (with the exception of the supplementary costs resulting from
your choice of a type of delivery other than the least expensive standard delivery offered by
us), without undue delay and in any event not later than 14 days from the day on which we are
informed about your decision to withdraw. We will use the same means of payment as you used
for the initial transaction. We may withhold reimbursement until we have received the goods
back or you have supplied evidence of having sent back the goods, whichever is the earliest.
You shall send back the goods without undue delay and in any event not later than 14 days
from the day on which you communicate your withdrawal to us. You will have to bear the direct
cost of returning the goods. You are only liable for any diminished value of the goods
resulting from handling other than what is necessary to establish their nature,
characteristics and functioning.

Early expiry for digital content
The right of withdrawal for digital content not supplied on a tangible medium expires early
once delivery has begun, if you expressly agreed that we begin before the withdrawal period
ends and acknowledged that you thereby lose your right of withdrawal (the checkbox at
checkout). Without that agreement, your download starts when the withdrawal period has ended.

Model withdrawal form
(Complete and return this form only if you wish to withdraw from the contract.)
To: Harbour Prints Demo GmbH, Kaiweg 1, 20457 Hamburg, Germany, hello@shop.example
I/We (*) hereby give notice that I/We (*) withdraw from my/our (*) contract of sale of the
following goods (*)/for the supply of the following digital content (*):
Ordered on (*)/received on (*):
Name of consumer(s):
Address of consumer(s):
Signature of consumer(s) (only if this form is notified on paper):
Date:
(*) Delete as appropriate.""",
    "privacy": f"""{SAMPLE_NOTE}

Controller: Harbour Prints Demo GmbH, Kaiweg 1, 20457 Hamburg, Germany, hello@shop.example.

We process only what your order needs, to perform the contract (Art. 6 (1) (b) GDPR) and to
meet our bookkeeping duties (Art. 6 (1) (c) GDPR). The table below lists every item, why we
keep it and when it is erased. You have the right to access, rectification, erasure,
restriction, data portability and objection, and the right to lodge a complaint with a
supervisory authority.""",
}


def seed_legal_samples(database: Database) -> int:
    """Write the sample legal texts into the pages still empty; returns how many were written.
    Apart from seed_demo: a test of an empty shop (and the production warning) keeps them
    empty. `shop demo` calls it."""
    written = 0
    with database.job_session() as session:
        for slug, body in SAMPLE_PAGES.items():
            page = legal.get_page(session, slug)
            if page is not None and (page.body or any(legal.imprint_fields(page).values())):
                continue
            legal.save_page(session, slug, body, SAMPLE_IMPRINT if slug == "imprint" else None)
            written += 1
    return written
